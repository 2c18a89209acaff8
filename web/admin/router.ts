import { useEffect, useState } from 'preact/hooks';

export const PAGES = [
  { id: 'protection', title: 'Protection' },
  { id: 'snapshots', title: 'Snapshots' },
  { id: 'prompts', title: 'Prompts' },
  { id: 'gallery', title: 'Gallery' },
  { id: 'users', title: 'Users' },
] as const;

export type PageId = (typeof PAGES)[number]['id'];

export interface Route {
  page: PageId;
  /** What follows the page in the hash, e.g. the prompt in #/prompts/ghibli-portrait. */
  detail: string | undefined;
}

export function parseHash(hash: string): Route {
  const [page, ...rest] = hash.replace(/^#\/?/, '').split('/');
  const known = PAGES.find((p) => p.id === page);
  const detail = rest.length > 0 && rest.join('/') !== '' ? decodeURIComponent(rest.join('/')) : undefined;
  return { page: known?.id ?? 'protection', detail: known ? detail : undefined };
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const changed = () => setRoute(parseHash(location.hash));
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  return route;
}
