/**
 * OpenAI's nine released CLIP checkpoints, recognised by the SHA-256 of the file (the
 * second-to-last component of each download URL, which `clip._download` verifies; see
 * docs/clip-formats.md 1.1 and openai/CLIP clip/clip.py `_MODELS`).
 */

export interface OfficialRelease {
  /** The name `clip.load` takes, e.g. "ViT-B/32". */
  name: string;
  file: string;
  sha256: string;
  architecture: "vit" | "resnet";
}

export const OFFICIAL_RELEASES: readonly OfficialRelease[] = [
  {
    name: "RN50",
    file: "RN50.pt",
    sha256: "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762",
    architecture: "resnet",
  },
  {
    name: "RN101",
    file: "RN101.pt",
    sha256: "8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599",
    architecture: "resnet",
  },
  {
    name: "RN50x4",
    file: "RN50x4.pt",
    sha256: "7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd",
    architecture: "resnet",
  },
  {
    name: "RN50x16",
    file: "RN50x16.pt",
    sha256: "52378b407f34354e150460fe41077663dd5b39c54cd0bfd2b27167a4a06ec9aa",
    architecture: "resnet",
  },
  {
    name: "RN50x64",
    file: "RN50x64.pt",
    sha256: "be1cfb55d75a9666199fb2206c106743da0f6468c9d327f3e0d0a543a9919d9c",
    architecture: "resnet",
  },
  {
    name: "ViT-B/32",
    file: "ViT-B-32.pt",
    sha256: "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
    architecture: "vit",
  },
  {
    name: "ViT-B/16",
    file: "ViT-B-16.pt",
    sha256: "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f",
    architecture: "vit",
  },
  {
    name: "ViT-L/14",
    file: "ViT-L-14.pt",
    sha256: "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
    architecture: "vit",
  },
  {
    name: "ViT-L/14@336px",
    file: "ViT-L-14-336px.pt",
    sha256: "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02",
    architecture: "vit",
  },
];

const BY_SHA = new Map(OFFICIAL_RELEASES.map((r) => [r.sha256, r]));

/** The official release a file is, by its SHA-256 (lower-case hex), or undefined. */
export function officialReleaseFor(sha256: string): OfficialRelease | undefined {
  return BY_SHA.get(sha256.toLowerCase());
}
