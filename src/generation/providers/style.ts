import { createHash } from 'node:crypto';

/**
 * How the offline renderer styles a photo. Everything here is decided before any pixel is touched,
 * from the trend's parameters and a seeded PRNG, so a render is a pure function of its inputs.
 */
export interface Style {
  tint: Rgb;
  /** Opacity of the soft-light tint layer. */
  tintStrength: number;
  saturation: number;
  brightness: number;
  /** Degrees. */
  hue: number;
  contrast: number;
  frame: Frame;
  /** 0 (none) .. 1 (edges nearly black). */
  vignette: number;
  /** The zoomed-in share of the photo kept (1 = whole photo) and where the window sits (0..1). */
  crop: { zoom: number; x: number; y: number };
  /** Text drawn on the image, or undefined for none. */
  caption: string | undefined;
  captionAt: 'top' | 'bottom';
}

export type Rgb = { r: number; g: number; b: number };
export const FRAMES = ['vignette', 'border', 'polaroid', 'none'] as const;
export type Frame = (typeof FRAMES)[number];

/** A look the PRNG picks when the trend leaves a value open. */
interface Look {
  tint: string;
  saturation: number;
  brightness: number;
  contrast: number;
  frame: Frame;
}

const LOOKS: Look[] = [
  { tint: '#ff9a3c', saturation: 1.25, brightness: 1.05, contrast: 1.1, frame: 'vignette' }, // golden hour
  { tint: '#2f8cff', saturation: 0.9, brightness: 1.0, contrast: 1.15, frame: 'border' }, // cold cinema
  { tint: '#18b5a4', saturation: 1.3, brightness: 1.02, contrast: 1.2, frame: 'vignette' }, // teal pop
  { tint: '#c89a5a', saturation: 0.65, brightness: 1.05, contrast: 0.9, frame: 'polaroid' }, // faded film
  { tint: '#ff3c9a', saturation: 1.6, brightness: 1.08, contrast: 1.15, frame: 'border' }, // neon
  { tint: '#3a3a5a', saturation: 0.05, brightness: 1.0, contrast: 1.35, frame: 'vignette' }, // noir
  { tint: '#9a6cff', saturation: 1.15, brightness: 1.1, contrast: 0.95, frame: 'polaroid' }, // dreamy
];

/** Small, fast and well mixed; seeded from SHA-256 so that nearby seeds give unrelated streams. */
export function prng(material: string): () => number {
  const h = createHash('sha256').update(material).digest();
  let a = h.readUInt32LE(0);
  let b = h.readUInt32LE(4);
  let c = h.readUInt32LE(8);
  let d = h.readUInt32LE(12);
  return () => {
    // sfc32
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
}

export interface StyleInput {
  prompt: string;
  seed: number | undefined;
  variant: number;
  title: string;
  slug: string;
  /** The prompt's parameters with the trend's parameters over them. */
  params: Record<string, unknown>;
}

/**
 * Parameters a trend (or its prompt) can set: `tint` (#rgb or #rrggbb), `saturation` (0..3),
 * `brightness` (0.2..3), `hue` (degrees), `contrast` (0.3..3), `frame` (vignette|border|polaroid|none),
 * `caption` (false hides the title, a string replaces it). Unset or unusable values are chosen by the
 * PRNG: a renderer that still produces a picture is worth more than one that fails on a typo.
 */
export function chooseStyle(input: StyleInput): Style {
  const seedPart =
    input.seed !== undefined && Number.isFinite(input.seed)
      ? `seed:${input.seed}`
      : `prompt:${createHash('sha256').update(input.prompt).digest('hex')}`;
  // The look is shared by all variants of a trend, so they read as one style; the variant stream
  // only moves the composition and nudges the grade.
  const base = prng(`look|${input.slug}|${seedPart}`);
  const vary = prng(`variant|${input.slug}|${seedPart}|${input.variant}`);
  const look = LOOKS[Math.floor(base() * LOOKS.length)]!;
  const p = input.params;
  const jitter = (spread: number) => 1 + (vary() * 2 - 1) * spread;

  const saturation = clamp(num(p.saturation, 0, 3) ?? look.saturation, 0, 3) * jitter(0.12);
  const captionParam = p.caption;
  const caption =
    captionParam === false || captionParam === 'false'
      ? undefined
      : typeof captionParam === 'string' && captionParam.trim() !== ''
        ? captionParam.trim()
        : input.title.trim() || undefined;
  const zoom = 0.78 + vary() * 0.2;
  return {
    tint: hexColour(p.tint) ?? hexColour(look.tint)!,
    tintStrength: 0.3 + vary() * 0.25,
    saturation: clamp(saturation, 0, 3),
    brightness: clamp((num(p.brightness, 0.2, 3) ?? look.brightness) * jitter(0.06), 0.2, 3),
    hue: Math.round((num(p.hue, -360, 360) ?? 0) + (vary() * 2 - 1) * 14),
    contrast: (num(p.contrast, 0.3, 3) ?? look.contrast) * jitter(0.06),
    frame: FRAMES.includes(p.frame as Frame) ? (p.frame as Frame) : look.frame,
    vignette: 0.35 + vary() * 0.35,
    crop: { zoom, x: vary(), y: vary() },
    caption: caption === undefined ? undefined : caption.slice(0, 80),
    captionAt: vary() < 0.75 ? 'bottom' : 'top',
  };
}

function num(value: unknown, min: number, max: number): number | undefined {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  return typeof n === 'number' && Number.isFinite(n) && n >= min && n <= max ? n : undefined;
}

function clamp(n: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, n));
}

export function hexColour(value: unknown): Rgb | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^#?([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(value.trim());
  if (!m) return undefined;
  const hex = m[1]!.length === 3 ? [...m[1]!].map((c) => c + c).join('') : m[1]!;
  const n = Number.parseInt(hex, 16);
  return { r: (n >> 16) & 255, g: (n >> 8) & 255, b: n & 255 };
}
