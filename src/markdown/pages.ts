import { fenceTicks } from "./escape.ts";

/**
 * Long Markdown split into comments that each fit a forge's size limit, with
 * no fence or <details> left open at a cut: a text is written as sections of
 * lines, and a construct a cut may fall inside is a frame, closed at the end
 * of one part and reopened at the start of the next.
 */
export interface Frame {
  readonly reopen: readonly string[];
  readonly close: readonly string[];
}

interface Line {
  readonly text: string;
  /** The frames open after this line. */
  readonly frames: readonly Frame[];
  /** The line introduces what follows (a summary, a fence's opening): no part ends with it. */
  readonly lead: boolean;
}

/** Lines that belong together (a header, one stack): texts are split between sections where they can. */
export type Section = readonly Line[];

export class SectionWriter {
  readonly lines: Line[] = [];
  #frames: readonly Frame[] = [];

  /** Adds lines; a text with newlines is several lines. */
  write(...texts: readonly string[]): void {
    this.#add(texts, false);
  }

  lead(...texts: readonly string[]): void {
    this.#add(texts, true);
  }

  open(frame: Frame, ...texts: readonly string[]): void {
    this.#frames = [...this.#frames, frame];
    this.lead(...texts);
  }

  close(): void {
    const frame = this.#frames.at(-1);
    if (frame === undefined) throw new Error("SectionWriter.close: no frame is open");
    this.#frames = this.#frames.slice(0, -1);
    const last = this.lines.at(-1);
    if (frame.close.length === 0) {
      // Nothing marks the end (a table): the frame ends with the last line, so
      // a split right after it does not reopen the frame for nothing.
      if (last !== undefined) this.lines[this.lines.length - 1] = { ...last, frames: this.#frames };
      return;
    }
    this.write(...(last?.text === "" && frame.close[0] === "" ? frame.close.slice(1) : frame.close));
  }

  #add(texts: readonly string[], lead: boolean): void {
    for (const text of texts) {
      for (const line of text.split("\n")) this.lines.push({ text: line, frames: this.#frames, lead });
    }
  }
}

/** Writes `content` in a fence that no line of it can end; `prefix` is "> " inside a blockquote. */
export function fenced(writer: SectionWriter, content: string, info: string, prefix = ""): void {
  const ticks = fenceTicks(content);
  writer.open(
    { reopen: [`${prefix}${ticks}${info}`], close: [`${prefix}${ticks}`] },
    `${prefix}${ticks}${info}`,
  );
  writer.write(...content.split("\n").map((line) => `${prefix}${line}`));
  writer.close();
}

/**
 * The bodies: `first` (a marker), then (when there are several) the part
 * line, then the sections packed greedily, each body at most `maxLength`
 * characters. The part line's length depends on the number of parts, so room
 * is reserved for the widest one of that many digits.
 */
export function paginateSections(
  sections: readonly Section[],
  maxLength: number,
  first: string,
  partLine: (part: number, parts: number) => string,
): string[] {
  const room = maxLength - first.length - 1;
  const whole = paginate(sections, room);
  if (whole.length === 1) return whole.map((body) => [first, ...body].join("\n"));
  for (let digits = String(whole.length).length; ; digits++) {
    const widest = 10 ** digits - 1;
    const parts = paginate(sections, room - partLine(widest, widest).length - 2);
    if (String(parts.length).length <= digits) {
      return parts.map((body, index) => [first, partLine(index + 1, parts.length), "", ...body].join("\n"));
    }
  }
}

/**
 * Packs lines into parts whose text (lines joined by newlines) stays within
 * `capacity`. Each line is added only when it still fits with the closing
 * lines of every frame open after it, so a part can always be closed. A
 * section that does not fit where it would start opens a new part, unless it
 * does not fit a part of its own either and a quarter of the current part is
 * still free; a line longer than a whole part is cut.
 */
function paginate(sections: readonly Section[], capacity: number): string[][] {
  const parts: string[][] = [];
  let reopened: readonly Frame[] = [];
  let body: Line[] = [];
  let used = 0;

  const start = (frames: readonly Frame[]) => {
    reopened = frames;
    body = [];
    used = cost(frames.flatMap((frame) => frame.reopen));
  };
  const finish = (carry: boolean) => {
    const lastPlain = body.findLastIndex((line) => !line.lead);
    const carried = carry ? body.slice(lastPlain + 1) : [];
    const kept = body.slice(0, body.length - carried.length);
    const frames = kept.at(-1)?.frames ?? reopened;
    const texts = [...reopened.flatMap((frame) => frame.reopen), ...kept.map((line) => line.text)];
    while (texts.at(-1) === "") texts.pop();
    parts.push([...texts, ...closing(frames)]);
    start(frames);
    for (const line of carried) place(line);
  };
  const place = (line: Line) => {
    let text = line.text;
    for (;;) {
      const free = capacity - used - cost(closing(line.frames)) - 1;
      if (text.length <= free) {
        body.push({ ...line, text });
        used += text.length + 1;
        return;
      }
      if (body.some((added) => !added.lead)) {
        finish(true);
        continue;
      }
      const cut = cutIndex(text, free);
      if (cut <= 0)
        throw new RangeError(`a comment of ${capacity} characters cannot hold this text's structure`);
      body.push({ ...line, text: text.slice(0, cut), lead: false });
      used += cut + 1;
      text = text.slice(cut);
    }
  };

  start([]);
  for (const section of sections) {
    if (body.length > 0) {
      const size = cost(section.map((line) => line.text)) + 1;
      if (used + size > capacity && (size <= capacity || capacity - used < capacity / 4)) finish(false);
      else place({ text: "", frames: [], lead: true });
    }
    for (const line of section) place(line);
  }
  finish(false);
  return parts;
}

function closing(frames: readonly Frame[]): string[] {
  return frames.toReversed().flatMap((frame) => frame.close);
}

/** Characters the lines take, each with its newline. */
function cost(lines: readonly string[]): number {
  return lines.reduce((sum, line) => sum + line.length + 1, 0);
}

/** At most `max`, never between the halves of a surrogate pair. */
function cutIndex(text: string, max: number): number {
  const code = text.charCodeAt(max - 1);
  return code >= 0xd800 && code <= 0xdbff ? max - 1 : max;
}
