// Tokenizer throughput on "a photo of a {class}." prompts (run after `pnpm build`).
// Usage: node bench/tokenizer.mjs   (from packages/clip)
import { performance } from "node:perf_hooks";
import { ClipTokenizer, getClipTokenizer, tokenize } from "../dist/index.js";

const classes = [
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
  "t-shirt/top",
  "trouser",
  "pullover",
  "dress",
  "coat",
  "sandal",
  "shirt",
  "sneaker",
  "bag",
  "ankle boot",
  "great white shark",
  "annual crop land",
  "apply eye makeup",
  "2012 BMW M3 coupe",
  "sea or lake",
];
const templates = [
  "a photo of a {}.",
  "a photo of a {}, a type of pet.",
  "a centered satellite photo of {}.",
  "{} texture.",
];
const prompts = [];
for (let i = 0; i < 1000; i++) {
  prompts.push(templates[i % templates.length].replace("{}", classes[(i * 7) % classes.length]));
}

let t0 = performance.now();
getClipTokenizer();
console.log(`vocabulary load: ${(performance.now() - t0).toFixed(1)} ms`);

for (let i = 0; i < 20; i++) tokenize(prompts); // warm-up (JIT, BPE cache)
const rounds = 300;
t0 = performance.now();
for (let i = 0; i < rounds; i++) tokenize(prompts);
const seconds = (performance.now() - t0) / 1000;
console.log(
  `tokenize, batches of ${prompts.length}: ${Math.round((rounds * prompts.length) / seconds).toLocaleString("en-US")} prompts/s`,
);

t0 = performance.now();
const single = 100_000;
for (let i = 0; i < single; i++) tokenize(prompts[i % prompts.length]);
const singleSeconds = (performance.now() - t0) / 1000;
console.log(
  `tokenize, one prompt per call: ${Math.round(single / singleSeconds).toLocaleString("en-US")} prompts/s`,
);

// Cold cache: a fresh tokenizer on words it has never seen, so BPE runs for every piece.
const coldTokenizer = new ClipTokenizer(getClipTokenizer().vocabulary);
const words = [];
for (let i = 0; i < 20_000; i++) words.push(`a photo of a ${((i * 2654435761) >>> 0).toString(36)}zq.`);
t0 = performance.now();
coldTokenizer.tokenize(words);
const coldSeconds = (performance.now() - t0) / 1000;
console.log(
  `tokenize, unseen words (cold BPE cache): ${Math.round(words.length / coldSeconds).toLocaleString("en-US")} prompts/s`,
);
