export { VIT_B16_CONFIG, vitTensorShapes } from "./clip-shapes.js";
export { randomCanonicalModel, type WeightDtype, writeCanonicalModelDir } from "./random-model.js";
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
export { type RandomVitB16Options, writeRandomVitB16ModelDir } from "./vit-b16.js";
