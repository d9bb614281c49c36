/**
 * Text cleaning before CLIP's BPE, after OpenAI's `basic_clean` + `whitespace_clean` + `lower()`:
 *
 *   ftfy.fix_text -> html.unescape twice -> strip -> collapse whitespace -> strip -> lowercase
 *
 * ftfy has no JavaScript port. We do what Hugging Face's fast CLIP tokenizer does (NFC) plus the
 * context-free fixes ftfy applies by default: Latin ligatures, full-width characters, curly quotes
 * and control characters. What ftfy does beyond that (repairing mojibake such as "cafÃ©", its
 * extra HTML unescape pass) is not reproduced; on clean text the result is identical.
 */
import { decodeHTML } from "entities";

/** ftfy `fix_latin_ligatures`: these characters become their NFKC expansion. */
const LATIN_LIGATURES = /[\u0132\u0133\u0149\u01c4-\u01cc\u01f1-\u01f3\ufb00-\ufb06]/g;
/** ftfy `fix_character_width`: full/half-width forms U+FF01..U+FFEF (NFKC) and the ideographic space. */
const WIDE_CHARACTERS = /[\u3000\uff01-\uffef]/g;
/** ftfy `uncurl_quotes`. */
const CURLY_SINGLE_QUOTES = /[\u2018-\u201b]/g;
const CURLY_DOUBLE_QUOTES = /[\u201c-\u201f]/g;
/** ftfy `remove_control_chars`: C0 controls except \t \n \f \r, DEL, deprecated format chars, BOM, U+FFF9-FFFC. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are the control characters ftfy removes
const CONTROL_CHARACTERS = /[\u0000-\u0008\u000b\u000e-\u001f\u007f\u206a-\u206f\ufeff\ufff9-\ufffc]/g;
/**
 * Python's `regex` `\s` on str is Unicode White_Space (JavaScript's `\s` differs: it adds U+FEFF
 * and lacks U+0085), hence the property escape.
 */
const WHITESPACE_RUN = /\p{White_Space}+/gu;
/** Text needing none of the Unicode fixes: printable ASCII plus ordinary whitespace. */
const PLAIN_ASCII = /^[\t\n\f\r\x20-\x7e]*$/;

const nfkc = (char: string): string => char.normalize("NFKC");

/** The subset of `ftfy.fix_text` described above, then NFC (ftfy's final step). */
export function fixText(text: string): string {
  if (PLAIN_ASCII.test(text)) return text;
  return text
    .replace(LATIN_LIGATURES, nfkc)
    .replace(WIDE_CHARACTERS, (c) => (c === "\u3000" ? " " : nfkc(c)))
    .replace(CURLY_SINGLE_QUOTES, "'")
    .replace(CURLY_DOUBLE_QUOTES, '"')
    .replace(CONTROL_CHARACTERS, "")
    .normalize("NFC");
}

/** Python's `html.unescape`: HTML5 named and numeric character references, legacy names without `;`. */
export function unescapeHtml(text: string): string {
  return text.includes("&") ? decodeHTML(text) : text;
}

/** The full cleaning OpenAI's tokenizer applies before splitting a text into pieces. */
export function cleanText(text: string): string {
  let cleaned = fixText(text);
  cleaned = unescapeHtml(unescapeHtml(cleaned));
  return cleaned.replace(WHITESPACE_RUN, " ").replace(/^ | $/g, "").toLowerCase();
}
