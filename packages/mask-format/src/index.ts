export { UnmaskError, isUnmaskError } from "./errors.js";
