// Per test file: remove the temporary folders it made (keep them with UNMASK_KEEP_TEMP=1).
import { afterAll } from "vitest";
import { removeTempDirs } from "./helpers.js";

afterAll(removeTempDirs);
