// npm pack sizes of @unmask/infer and the workspace packages it pulls in.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const packages = ["infer", "clip", "mask-format"];
for (const name of packages) {
  const cwd = fileURLToPath(new URL(`../../${name}/`, import.meta.url));
  const [info] = JSON.parse(execFileSync("npm", ["pack", "--dry-run", "--json"], { cwd, encoding: "utf8" }));
  console.log(
    `@unmask/${name}: tarball ${(info.size / 1024).toFixed(1)} KiB, unpacked ${(info.unpackedSize / 1024).toFixed(1)} KiB, ${info.entryCount} files`,
  );
}
console.log(
  "third-party runtime dependencies of @unmask/infer: onnxruntime-node 1.30.0, sharp 0.35.5, busboy 1.6.0 (see their npm pages for sizes; onnxruntime-node's binaries dominate)",
);
