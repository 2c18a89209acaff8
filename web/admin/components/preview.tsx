import { useState } from 'preact/hooks';

/** The server answers a small WebP for ?preview=1: for objects that have no stored preview of their own. */
export const previewOf = (url: string) => `${url}${url.includes('?') ? '&' : '?'}preview=1`;

/** A box the size of a preview that says, in words, why there is no image in it. */
export function Placeholder({ text, size }: { text: string; size: number }) {
  return (
    <div class="no-image" style={{ width: `${size}px`, height: `${size}px` }}>
      {text}
    </div>
  );
}

/**
 * One preview tile. Until the image arrives the box says it is loading, and an image that does not arrive
 * (deleted, damaged, not an image) becomes a placeholder that says so, never an empty grey box.
 */
export function PreviewImage({ src, alt, size }: { src: string; alt: string; size: number }) {
  const [state, setState] = useState<'loading' | 'loaded' | 'failed'>('loading');
  if (state === 'failed') return <Placeholder text="Preview did not load" size={size} />;
  return (
    <span class="preview-frame" data-state={state} style={{ width: `${size}px`, height: `${size}px` }}>
      <span class="preview-label" aria-hidden="true">
        Loading…
      </span>
      <img
        loading="lazy"
        src={src}
        alt={alt}
        width={size}
        height={size}
        onLoad={() => setState('loaded')}
        onError={() => setState('failed')}
      />
    </span>
  );
}
