import { Header, type HeaderData } from 'tar';

/** One raw tar member: node-tar's header encoder, then the body padded to whole 512-byte blocks. */
export function tarMember(header: HeaderData, body: Buffer = Buffer.alloc(0)): Buffer {
  const encoded = new Header({
    mode: 0o644,
    mtime: new Date(1_700_000_000_000),
    size: body.length,
    ...header,
  });
  encoded.encode();
  return Buffer.concat([encoded.block!, body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
}
