/** Logs a request as method and URL with any token value redacted; never headers. */
export function serializeRequest(request: { method: string; url: string; ip?: string }) {
  return { method: request.method, url: redactUrl(request.url), remoteAddress: request.ip };
}

function redactUrl(url: string): string {
  const queryStart = url.indexOf("?");
  if (queryStart === -1) return url;
  const params = new URLSearchParams(url.slice(queryStart + 1));
  if (!params.has("token")) return url;
  params.set("token", "[redacted]");
  return `${url.slice(0, queryStart)}?${params.toString()}`;
}
