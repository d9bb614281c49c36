# Sourced by the run-*.sh scripts on the device: from the repository root, unpacks the carried node
# into /tmp/node (N), sharp's native files when carried, the repository's fixtures when asked
# (DEVICE_FIXTURES=1), then enters .gpu with the tree's fatbin. el prints a step with the seconds so far.
T0=$(date +%s); el() { echo "[t=$(( $(date +%s) - T0 ))s] $*"; }
xz -dc .gpu/node.xz > /tmp/node && chmod +x /tmp/node
N=/tmp/node
[ -f .gpu/sharp.tar.xz ] && tar -xJf .gpu/sharp.tar.xz -C .gpu
[ "${DEVICE_FIXTURES:-0}" = 1 ] && $N --input-type=module -e "import { fixturesRoot } from './fixtures/index.js'; console.log(fixturesRoot())"
cd .gpu && export UNMASK_CUDA_FATBIN=$PWD/../packages/trainer/kernels/unmask.fatbin
