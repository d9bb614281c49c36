export { isUnmaskError, UnmaskError } from "@unmask/mask-format";
export { temporaryPathFor, writeFileAtomic } from "./atomic-file.js";
export {
  type BpeVocabulary,
  bytePairEncode,
  bytesToUnicode,
  CLIP_MERGE_COUNT,
  END_OF_TEXT,
  parseBpeMerges,
  START_OF_TEXT,
} from "./bpe.js";
export {
  CLIP_MEAN,
  CLIP_STD,
  type ClipConfig,
  configFromJson,
  configToJson,
  inferConfig,
  type ModelDirConfigJson,
  type ShapeMap,
  vitConfig,
} from "./config.js";
export {
  DTYPE_BYTES,
  type DType,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  fromFloat32,
  isDType,
  shapeNumel,
  toFloat32,
} from "./dtype.js";
export {
  type DecodedImage,
  type DecodeOptions,
  decodeImage,
  type ImageInput,
  loadImage,
  MAX_IMAGE_PIXELS,
  toRgb,
} from "./image.js";
export {
  type ClassImages,
  compareCodeUnits,
  IMAGE_EXTENSIONS,
  listClassImages,
  listImageFiles,
  listSubfolders,
} from "./image-folder.js";
export {
  BLOCK_TENSORS,
  defaultMaskedTensors,
  HF_IGNORED_KEYS,
  type HfSourcePlan,
  hfNameFor,
  planFromHf,
  TEXT_BLOCK_PREFIX,
  VISION_BLOCK_PREFIX,
  vitTensorNames,
} from "./keys.js";
export {
  MAX_RESIZE_SIDE,
  type PixelImage,
  type ResampleFilter,
  type RgbImage,
  resizeImage,
  resizeRgb,
} from "./pillow-resample.js";
export {
  centerCrop,
  centerCropOffsets,
  type NormalizeOptions,
  normalizePixels,
  type PreprocessImagesOptions,
  type PreprocessOptions,
  type PreprocessProgress,
  preprocessImage,
  preprocessImages,
  resizeAndCropDecoded,
  resizedShortSideSize,
} from "./preprocess.js";
export {
  encodeSafetensors,
  layoutSafetensors,
  MAX_HEADER_BYTES,
  openSafetensors,
  parseSafetensors,
  parseSafetensorsHeader,
  readSafetensorsFloat32,
  SafetensorsFile,
  type SafetensorsHeader,
  type TensorEntry,
  type TensorToWrite,
  type WriteSafetensorsOptions,
  writeSafetensors,
} from "./safetensors.js";
export {
  cleanClassName,
  DATASET_TEMPLATES,
  DEFAULT_TEMPLATE,
  fillTemplate,
  templateForDataset,
} from "./templates.js";
export { cleanText, fixText, unescapeHtml } from "./text-clean.js";
export {
  type BuildClassTextFeaturesOptions,
  buildClassTextFeatures,
  DEFAULT_TEXT_BATCH,
  type EncodeText,
  type TextFeaturesProgress,
} from "./text-features.js";
export { ClipTokenizer, DEFAULT_CONTEXT_LENGTH, type TokenizeOptions } from "./tokenizer.js";
export {
  BPE_VOCABULARY_PATH,
  getClipTokenizer,
  tokenize,
  tokenizerFromVocabularyBytes,
} from "./tokenizer-node.js";
