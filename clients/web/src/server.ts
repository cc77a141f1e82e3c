// Where the palaverd that served this page is.
//
// The app lives at the root of the API's path space: palaverd serves it at `/` and, behind an
// ingress, below a prefix (`/chat/`). Resolving `.` against the page's URL gives that root in
// both cases, and in the Vite dev server (which proxies /v1 to a pod) as well.

/** The directory the page was served from, with a trailing slash (https://host/chat/). */
export const serverRoot: URL = new URL('.', location.href);

/** The base URL the SDK takes: the root without its trailing slash (https://host/chat). */
export const sdkBaseUrl: string = serverRoot.href.replace(/\/$/, '');

/** An absolute URL of an API path given relative to the root (`v1/dev`). */
export function apiUrl(path: string): URL {
  return new URL(path.replace(/^\//, ''), serverRoot);
}
