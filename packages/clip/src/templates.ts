/**
 * Prompt templates and class-name cleaning as R-AMT builds its text classifier
 * (docs/rmt-method.md section 3, `code/trainers/masktuning.py`): one template per dataset, `{}`
 * replaced by the cleaned class name.
 */
import { UnmaskError } from "@unmask/mask-format";

/** The template for datasets without an entry below (and CLIP's usual zero-shot prompt). */
export const DEFAULT_TEMPLATE = "a photo of a {}.";

/** R-AMT's template per dataset (CoOp dataset names). */
export const DATASET_TEMPLATES: Readonly<Record<string, string>> = Object.freeze({
  OxfordPets: "a photo of a {}, a type of pet.",
  OxfordFlowers: "a photo of a {}, a type of flower.",
  FGVCAircraft: "a photo of a {}, a type of aircraft.",
  DescribableTextures: "{} texture.",
  EuroSAT: "a centered satellite photo of {}.",
  Food101: "a photo of {}, a type of food.",
  UCF101: "a photo of a person doing {}.",
  StanfordCars: DEFAULT_TEMPLATE,
  SUN397: DEFAULT_TEMPLATE,
  Caltech101: DEFAULT_TEMPLATE,
  ImageNet: DEFAULT_TEMPLATE,
  ImageNetV2: DEFAULT_TEMPLATE,
  ImageNetSketch: DEFAULT_TEMPLATE,
  ImageNetA: DEFAULT_TEMPLATE,
  ImageNetR: DEFAULT_TEMPLATE,
});

/** The dataset's template, or DEFAULT_TEMPLATE for a dataset R-AMT does not list. */
export function templateForDataset(dataset: string): string {
  return Object.hasOwn(DATASET_TEMPLATES, dataset) ? DATASET_TEMPLATES[dataset] : DEFAULT_TEMPLATE;
}

/** R-AMT's class-name cleaning: underscores become spaces, then lowercase. */
export function cleanClassName(name: string): string {
  return name.replaceAll("_", " ").toLowerCase();
}

/**
 * Python's `template.format(name)` for the one-placeholder templates used here: every `{}` is
 * replaced by the class name.
 * @throws UnmaskError BAD_TEMPLATE when the template has no `{}`.
 */
export function fillTemplate(template: string, className: string): string {
  if (!template.includes("{}")) {
    throw new UnmaskError(
      "BAD_TEMPLATE",
      `Prompt template ${JSON.stringify(template)} has no {} placeholder`,
      {
        subject: template,
      },
    );
  }
  return template.split("{}").join(className);
}
