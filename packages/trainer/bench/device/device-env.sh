# Sourced by the run-*.sh scripts on the device: from the repository root, unpacks the carried node
# into /tmp/node (N), sharp's native files when carried, the repository's fixtures when asked
# (DEVICE_FIXTURES=1), the several-GPU environment when asked (DEVICE_NCCL=1: NVLink multicast
# off, the image's pip NCCL for the workers, a libuv thread per core for decoding), then enters
# .gpu with the tree's fatbins. el prints a step with the seconds so far.
T0=$(date +%s); el() { echo "[t=$(( $(date +%s) - T0 ))s] $*"; }
xz -dc .gpu/node.xz > /tmp/node && chmod +x /tmp/node
N=/tmp/node
[ -f .gpu/sharp.tar.xz ] && tar -xJf .gpu/sharp.tar.xz -C .gpu
[ "${DEVICE_FIXTURES:-0}" = 1 ] && $N --input-type=module -e "import { fixturesRoot } from './fixtures/index.js'; console.log(fixturesRoot())"
if [ "${DEVICE_NCCL:-0}" = 1 ]; then
  export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
  export UNMASK_NCCL_LIBRARY=$(python3 -c "import nvidia.nccl, os; print(os.path.join(nvidia.nccl.__path__[0], 'lib', 'libnccl.so.2'))")
  export UV_THREADPOOL_SIZE=$(nproc)
fi
cd .gpu && export UNMASK_CUDA_FATBIN=$PWD/../packages/trainer/kernels/unmask.fatbin \
  UNMASK_CUDA_FATBIN_FP16=$PWD/../packages/trainer/kernels/unmask-fp16.fatbin
