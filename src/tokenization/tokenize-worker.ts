// Piscina worker: encodes text sections of cold long prompts off the main thread, so one 30k-token prompt
// never stalls the event loop that serves every other request. Each worker loads a tokenizer directory once.
import { SegmentEncoder } from "./segment-encoder.js";
import { loadTokenizerFiles } from "./tokenizer-files.js";

export interface WorkerTask {
  dir: string;
  /** Sections to encode (text between added tokens, with its section index). Empty = just load. */
  sections: { text: string; section: number }[];
  /** Set for tokenizers that cannot be segmented: encode this whole text instead. */
  whole?: { text: string; addSpecialTokens: boolean };
}

const encoders = new Map<string, Promise<SegmentEncoder>>();

function encoderFor(dir: string): Promise<SegmentEncoder> {
  let p = encoders.get(dir);
  if (p === undefined) {
    p = loadTokenizerFiles(dir).then((files) => new SegmentEncoder(files));
    p.catch(() => encoders.delete(dir));
    encoders.set(dir, p);
  }
  return p;
}

export default async function encode(task: WorkerTask): Promise<Uint32Array[]> {
  const enc = await encoderFor(task.dir);
  if (task.whole) return [enc.encodeWhole(task.whole.text, task.whole.addSpecialTokens)];
  return task.sections.map((s) => enc.encodeSection(s.text, s.section));
}
