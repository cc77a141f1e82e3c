// A file attached to a message. Files live in object storage behind short-lived presigned URLs
// (GET /v1/files/{id}?redirect=false): images show their thumbnail, anything else a download
// link. A link older than its validity is fetched again before it is followed.

import { useEffect, useState } from 'preact/hooks';
import type { FileRef } from '@palaver/client';
import { formatSize } from '../format';
import { useApp } from '../state/app';
import { Icon } from './Icon';

/** Presigned links last five minutes; refresh a little before. */
const LINK_TTL_MS = 4 * 60 * 1000;

/** Thumbnails fit 360×360 (the server's preview size). */
const BOX = 360;

export function Attachment({ file, tabIndex }: { file: FileRef; tabIndex: number }) {
  const app = useApp();
  const [link, setLink] = useState<{ url: string; at: number } | null>(null);
  const [thumb, setThumb] = useState<string | null>(null);
  const image = file.content_type.startsWith('image/') && file.thumbnail;

  useEffect(() => {
    let live = true;
    app.client.rest.fileUrl(file.id).then((url) => live && setLink({ url, at: Date.now() }), () => undefined);
    if (image) app.client.rest.fileUrl(file.id, true).then((url) => live && setThumb(url), () => undefined);
    return () => {
      live = false;
    };
  }, [file.id]);

  const open = async (e: MouseEvent) => {
    if (link && Date.now() - link.at < LINK_TTL_MS) return;
    e.preventDefault();
    try {
      const url = await app.client.rest.fileUrl(file.id);
      setLink({ url, at: Date.now() });
      window.open(url, '_blank', 'noopener');
    } catch (err) {
      app.toast.set(`Could not open ${file.name}: ${(err as Error).message}`);
    }
  };

  const scale = file.width && file.height ? Math.min(1, BOX / Math.max(file.width, file.height)) : 1;
  const size = file.width && file.height ? { width: Math.round(file.width * scale), height: Math.round(file.height * scale) } : {};

  return (
    <a
      class={image ? 'attachment image' : 'attachment'}
      href={link?.url ?? '#'}
      target="_blank"
      rel="noopener noreferrer"
      tabIndex={tabIndex}
      onClick={open}
      aria-label={`${file.name}, ${formatSize(file.size)}${image ? ', image' : ''} (opens in a new tab)`}
    >
      {image ? (
        thumb ? (
          <img src={thumb} alt={file.name} {...size} />
        ) : (
          <span class="thumb-placeholder" style={size.width ? { width: size.width, height: size.height } : undefined} />
        )
      ) : (
        <>
          <Icon name="attach" /> <span class="file-name">{file.name}</span>{' '}
          <span class="hint">{formatSize(file.size)}</span>
        </>
      )}
    </a>
  );
}
