export { isUnmaskError, UnmaskError } from "./errors.js";
