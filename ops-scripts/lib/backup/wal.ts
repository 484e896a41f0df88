// WAL file names, LSNs and timelines: enough to say which segments a base
// backup needs and whether the archive holds all of them, following timeline
// switches recorded in the .history files.

export const SEGMENT_RE = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/;
export const HISTORY_RE = /^([0-9A-F]{8})\.history$/;

export interface Segment {
  timeline: number;
  segno: bigint;
}

const hex8 = (n: number | bigint) => n.toString(16).toUpperCase().padStart(8, '0');

export function parseLsn(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

export const segnoOfLsn = (lsn: string | bigint, segSize: number) =>
  (typeof lsn === 'string' ? parseLsn(lsn) : lsn) / BigInt(segSize);

export function segmentName(timeline: number, segno: bigint, segSize: number): string {
  const perId = 0x100000000n / BigInt(segSize);
  return `${hex8(timeline)}${hex8(segno / perId)}${hex8(segno % perId)}`;
}

export function parseSegment(name: string, segSize: number): Segment | undefined {
  const m = SEGMENT_RE.exec(name);
  if (!m) return undefined;
  const perId = 0x100000000n / BigInt(segSize);
  return { timeline: parseInt(m[1]!, 16), segno: BigInt(`0x${m[2]}`) * perId + BigInt(`0x${m[3]}`) };
}

/** A timeline's history: its ancestors, each with the LSN where the next timeline branched off. */
export interface HistoryEntry {
  timeline: number;
  switchLsn: bigint;
}

export function parseHistory(text: string): HistoryEntry[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const [tli, lsn] = l.split(/\s+/);
      return { timeline: Number(tli), switchLsn: parseLsn(lsn!) };
    });
}

export interface ArchiveCheck {
  /** The newest segment reachable from the start without a gap. */
  newest?: { name: string; timeline: number; segno: bigint };
  /** The segments from the start to `newest`, in order, each on the timeline recovery reads it from. */
  segments: string[];
  missing: string[];
  timeline: number;
}

/**
 * Walks the archive from `start` to the newest segment on the latest timeline
 * that descends from the start's timeline, listing the segments missing.
 */
export function checkArchive(
  files: string[],
  histories: Map<number, HistoryEntry[]>,
  start: Segment,
  segSize: number,
): ArchiveCheck {
  // The latest timeline whose history passes through the start's timeline.
  let target = start.timeline;
  for (const [tli, hist] of histories) {
    if (tli > target && hist.some((h) => h.timeline === start.timeline)) target = tli;
  }
  const ancestry = target === start.timeline ? [] : histories.get(target)!.filter((h) => h.timeline >= start.timeline);
  const timelineOf = (segno: bigint) => {
    for (const h of ancestry) if (segno < h.switchLsn / BigInt(segSize)) return h.timeline;
    return target;
  };
  const present = new Set(files);
  let maxSeg = start.segno - 1n;
  for (const f of files) {
    const s = parseSegment(f, segSize);
    if (s && s.segno >= start.segno && s.timeline === timelineOf(s.segno) && s.segno > maxSeg) maxSeg = s.segno;
  }
  const missing: string[] = [];
  const segments: string[] = [];
  let newest: ArchiveCheck['newest'];
  for (let s = start.segno; s <= maxSeg; s++) {
    const name = segmentName(timelineOf(s), s, segSize);
    if (present.has(name)) {
      if (!missing.length) {
        newest = { name, timeline: timelineOf(s), segno: s };
        segments.push(name);
      }
    } else missing.push(name);
  }
  return { newest, segments, missing, timeline: target };
}
