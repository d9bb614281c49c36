export { vitTensorShapes } from "./clip-shapes.js";
export {
  type ArchiveTensor,
  modulePickle,
  PickleWriter,
  stateDictPickle,
  type TensorRecord,
  type WriteTorchArchiveOptions,
  writeRawTorchZip,
  writeTensor,
  writeTorchArchive,
  ZipWriter,
} from "./torch-writer.js";
