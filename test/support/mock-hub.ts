import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A local mock of the Hugging Face Hub: plain node:http on 127.0.0.1 with an ephemeral port,
 * answering the requests @huggingface/hub makes (its `downloadFile`, `listFiles`, `uploadFiles`
 * and `commit` calls: /api/models, /resolve, /paths-info, /preupload, /commit) for
 * model repos held in memory. Never advertises xet. Faults can be injected per path to prove the
 * retry, resume and verify paths.
 */
export interface MockRepoOptions {
  /** Files need `Authorization: Bearer <token>` (a gated repo). */
  readonly gatedToken?: string;
  /** Extra refs (branch or tag name -> the same commit). */
  readonly refs?: readonly string[];
}

interface Repo {
  /** branch or tag -> commit sha */
  readonly refs: Map<string, string>;
  /** commit sha -> its files */
  readonly commits: Map<string, Map<string, Uint8Array>>;
  readonly gatedToken: string | undefined;
  readonly private: boolean;
  /** Commits received through the commit API, in order (for push tests). */
  readonly received: ReceivedCommit[];
}

export interface ReceivedCommit {
  readonly branch: string;
  readonly createPr: boolean;
  readonly summary: string;
  readonly oid: string;
  readonly lfsFiles: readonly { path: string; oid: string; size: number }[];
  readonly regularFiles: readonly string[];
}

export interface LoggedRequest {
  readonly method: string;
  readonly url: string;
  readonly range: string | undefined;
  readonly authorized: boolean;
}

type Fault =
  | { kind: "status"; status: number; retryAfter?: number }
  | { kind: "drop"; afterBytes: number }
  | { kind: "corrupt" }
  /** The body in pieces of `bytes`, one every `everyMs`: a download that takes a while. */
  | { kind: "slow"; bytes: number; everyMs: number }
  /** Send the first bytes, then hold the connection open without sending more (a stalled link, for Ctrl-C tests). */
  | { kind: "stall"; afterBytes: number };

/** Seeded files at or above this size are LFS (sha256 oids), like large files on the real Hub. */
const LFS_THRESHOLD = 1024;

/** Paths committed as regular (non-LFS) files, per commit's file map: the upload mode decides, not size. */
const REGULAR = new WeakMap<Map<string, Uint8Array>, Set<string>>();

function isLfs(files: Map<string, Uint8Array>, path: string, bytes: Uint8Array): boolean {
  const regular = REGULAR.get(files);
  return regular === undefined ? bytes.byteLength >= LFS_THRESHOLD : !regular.has(path);
}

export class MockHub {
  private readonly repos = new Map<string, Repo>();
  private readonly faults: { match: RegExp; fault: Fault; remaining: number }[] = [];
  readonly log: LoggedRequest[] = [];
  private server: Server | undefined;
  url = "";

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        res.statusCode = 500;
        res.end(String(error));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async close(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    this.server = undefined;
  }

  /** Adds a model repo; returns its commit sha (deterministic from the contents). */
  addRepo(name: string, files: Record<string, Uint8Array | string>, options: MockRepoOptions = {}): string {
    const map = new Map(Object.entries(files).map(([path, content]) => [path, typeof content === "string" ? new TextEncoder().encode(content) : content]));
    const commit = commitSha(map, "");
    const refs = new Map([["main", commit], ...(options.refs ?? []).map((r) => [r, commit] as [string, string])]);
    this.repos.set(name, { refs, commits: new Map([[commit, map]]), gatedToken: options.gatedToken, private: false, received: [] });
    return commit;
  }

  repo(name: string): { refs: ReadonlyMap<string, string>; files(revision?: string): ReadonlyMap<string, Uint8Array>; received: readonly ReceivedCommit[]; private: boolean } | undefined {
    const repo = this.repos.get(name);
    if (repo === undefined) return undefined;
    return { refs: repo.refs, received: repo.received, private: repo.private, files: (revision = "main") => repo.commits.get(repo.refs.get(revision) ?? revision) ?? new Map() };
  }

  /** Token required for write calls (create, commit). */
  writeToken = "hf_write_token";
  private readonly lfsStore = new Map<string, Uint8Array>();

  /** The next `count` requests whose path matches get this fault. */
  inject(match: RegExp, fault: Fault, count = 1): void {
    this.faults.push({ match, fault, remaining: count });
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  /** Body faults (drop, corrupt) skip the library's 1-byte `Range: bytes=0-0` probe. */
  private takeFault(path: string, range: string | undefined): Fault | undefined {
    const probe = range === "bytes=0-0";
    const entry = this.faults.find((f) => f.remaining > 0 && f.match.test(path) && !(probe && f.fault.kind !== "status"));
    if (entry === undefined) return undefined;
    entry.remaining--;
    return entry.fault;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://mock");
    const path = url.pathname;
    const auth = req.headers.authorization;
    this.log.push({ method: req.method ?? "GET", url: req.url ?? "", range: req.headers.range, authorized: auth !== undefined });
    const fault = this.takeFault(path, req.headers.range);
    if (fault?.kind === "status") {
      res.writeHead(fault.status, { "content-type": "application/json", ...(fault.retryAfter === undefined ? {} : { "retry-after": String(fault.retryAfter) }) });
      res.end(JSON.stringify({ error: `injected ${fault.status}` }));
      return;
    }
    let m: RegExpExecArray | null;
    if ((m = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(path))) return this.revision(res, m[1]!, decodeURIComponent(m[2]!));
    if ((m = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)$/.exec(path))) return this.tree(res, m[1]!, decodeURIComponent(m[2]!));
    if (req.method === "POST" && path === "/api/repos/create") return this.createRepo(res, auth, JSON.parse(await readBody(req)));
    if (req.method === "POST" && (m = /^\/api\/models\/([^/]+\/[^/]+)\/paths-info\/(.+)$/.exec(path))) return this.pathsInfo(res, m[1]!, decodeURIComponent(m[2]!), JSON.parse(await readBody(req)));
    if (req.method === "POST" && (m = /^\/api\/models\/([^/]+\/[^/]+)\/preupload\/(.+)$/.exec(path))) return this.preupload(res, auth, m[1]!, JSON.parse(await readBody(req)));
    if (req.method === "POST" && (m = /^\/([^/]+\/[^/]+)\.git\/info\/lfs\/objects\/batch$/.exec(path))) return this.lfsBatch(res, auth, JSON.parse(await readBody(req)));
    if (req.method === "PUT" && (m = /^\/__lfs\/([0-9a-f]{64})$/.exec(path))) return this.lfsUpload(res, m[1]!, await readBodyBytes(req));
    if (req.method === "POST" && (m = /^\/api\/models\/([^/]+\/[^/]+)\/commit\/(.+)$/.exec(path))) {
      return this.commit(res, auth, m[1]!, decodeURIComponent(m[2]!), url.searchParams.get("create_pr") === "1", await readBody(req));
    }
    if ((m = /^\/([^/]+\/[^/]+)\/(resolve|raw)\/([^/]+)\/(.+)$/.exec(path))) {
      return this.file(req, res, m[1]!, decodeURIComponent(m[3]!), decodeURIComponent(m[4]!), auth, fault);
    }
    json(res, 404, { error: "Not found" });
  }

  private repoAt(res: ServerResponse, name: string, revision: string): { repo: Repo; commit: string; files: Map<string, Uint8Array> } | undefined {
    const repo = this.repos.get(name);
    if (repo === undefined) {
      json(res, 404, { error: "Repository not found" }, { "x-error-code": "RepoNotFound" });
      return undefined;
    }
    const commit = repo.refs.get(revision === "HEAD" ? "main" : revision) ?? (repo.commits.has(revision) ? revision : undefined);
    if (commit === undefined) {
      json(res, 404, { error: `Invalid rev id: ${revision}` }, { "x-error-code": "RevisionNotFound" });
      return undefined;
    }
    return { repo, commit, files: repo.commits.get(commit)! };
  }

  private revision(res: ServerResponse, name: string, revision: string): void {
    const at = this.repoAt(res, name, revision);
    if (!at) return;
    const repo = at.repo;
    json(res, 200, {
      _id: `id-${name}`,
      id: name,
      sha: at.commit,
      private: false,
      gated: repo.gatedToken === undefined ? false : "manual",
      downloads: 0,
      likes: 0,
      lastModified: "2026-01-01T00:00:00.000Z",
      pipeline_tag: "text-generation",
      siblings: [...at.files.keys()].map((rfilename) => ({ rfilename })),
    });
  }

  private tree(res: ServerResponse, name: string, revision: string): void {
    const at = this.repoAt(res, name, revision);
    if (!at) return;
    json(res, 200, entries(at.files));
  }

  private pathsInfo(res: ServerResponse, name: string, revision: string, body: { paths?: string[] }): void {
    const at = this.repoAt(res, name, revision);
    if (!at) return;
    const wanted = new Set(body.paths ?? []);
    json(res, 200, entries(at.files).filter((e) => wanted.has(e.path)).map((e) => ({ ...e, lastCommit: { id: at.commit, title: "x", date: "2026-01-01T00:00:00.000Z" } })));
  }

  private file(req: IncomingMessage, res: ServerResponse, name: string, revision: string, filePath: string, auth: string | undefined, fault: Fault | undefined): void {
    const at = this.repoAt(res, name, revision);
    if (!at) return;
    const repo = at.repo;
    if (repo.gatedToken !== undefined && auth !== `Bearer ${repo.gatedToken}`) {
      json(res, auth === undefined ? 401 : 403, { error: `Access to model ${name} is restricted. You must have access to it and be authenticated to access it.` });
      return;
    }
    const original = at.files.get(filePath);
    if (original === undefined) {
      json(res, 404, { error: "Entry not found" }, { "x-error-code": "EntryNotFound" });
      return;
    }
    let bytes = original;
    if (fault?.kind === "corrupt") {
      bytes = original.slice();
      bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff;
    }
    const lfs = isLfs(at.files, filePath, original);
    const etag = lfs ? sha256(original) : gitSha1(original);
    const headers: Record<string, string> = { "content-type": "application/octet-stream", etag: `"${etag}"`, "accept-ranges": "bytes", "x-repo-commit": at.commit };
    if (lfs) headers["x-linked-etag"] = `"${etag}"`;
    if (req.method === "HEAD") {
      res.writeHead(200, { ...headers, "content-length": String(bytes.byteLength) });
      res.end();
      return;
    }
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    let start = 0;
    let end = bytes.byteLength - 1;
    let status = 200;
    if (range) {
      start = Number(range[1]);
      end = range[2] === "" ? end : Math.min(end, Number(range[2]));
      status = 206;
      headers["content-range"] = `bytes ${start}-${end}/${bytes.byteLength}`;
    }
    const body = bytes.subarray(start, end + 1);
    res.writeHead(status, { ...headers, "content-length": String(body.byteLength) });
    if (fault?.kind === "drop") {
      res.write(body.subarray(0, Math.min(fault.afterBytes, body.byteLength)));
      setTimeout(() => res.socket?.destroy(), 5);
      return;
    }
    if (fault?.kind === "slow") {
      let at = 0;
      const next = (): void => {
        if (res.destroyed) return;
        if (at >= body.byteLength) return void res.end();
        res.write(body.subarray(at, at + fault.bytes));
        at += fault.bytes;
        setTimeout(next, fault.everyMs);
      };
      next();
      return;
    }
    if (fault?.kind === "stall") {
      res.write(body.subarray(0, Math.min(fault.afterBytes, body.byteLength)));
      return; // close() ends the connection
    }
    res.end(body);
  }
  private writer(res: ServerResponse, auth: string | undefined): boolean {
    if (auth !== `Bearer ${this.writeToken}`) {
      json(res, 401, { error: "Invalid credentials in Authorization header" });
      return false;
    }
    return true;
  }

  private createRepo(res: ServerResponse, auth: string | undefined, body: { name: string; organization?: string; private?: boolean; visibility?: string }): void {
    if (!this.writer(res, auth)) return;
    const name = body.organization ? `${body.organization}/${body.name}` : body.name;
    if (this.repos.has(name)) {
      json(res, 409, { error: "You already created this model repo" });
      return;
    }
    const empty = new Map<string, Uint8Array>();
    const commit = commitSha(empty, "init");
    this.repos.set(name, { refs: new Map([["main", commit]]), commits: new Map([[commit, empty]]), gatedToken: undefined, private: body.private === true || body.visibility === "private", received: [] });
    json(res, 200, { url: `${this.url}/${name}`, name, id: `id-${name}` });
  }

  private preupload(res: ServerResponse, auth: string | undefined, name: string, body: { files: { path: string }[] }): void {
    if (!this.writer(res, auth)) return;
    if (!this.repos.has(name)) return json(res, 404, { error: "Repository not found" }, { "x-error-code": "RepoNotFound" });
    json(res, 200, { files: body.files.map((f) => ({ path: f.path, uploadMode: /\.(b158|gguf|safetensors|bin)$/.test(f.path) ? "lfs" : "regular" })) });
  }

  private lfsBatch(res: ServerResponse, auth: string | undefined, body: { objects: { oid: string; size: number }[]; transfers?: string[] }): void {
    if (!this.writer(res, auth)) return;
    json(res, 200, {
      transfer: "basic",
      objects: body.objects.map((o) => (this.lfsStore.has(o.oid) ? { oid: o.oid, size: o.size } : { oid: o.oid, size: o.size, authenticated: true, actions: { upload: { href: `${this.url}/__lfs/${o.oid}` } } })),
    });
  }

  private lfsUpload(res: ServerResponse, oid: string, bytes: Uint8Array): void {
    if (sha256(bytes) !== oid) return json(res, 400, { error: "oid mismatch" });
    this.lfsStore.set(oid, bytes);
    res.writeHead(200);
    res.end();
  }

  private commit(res: ServerResponse, auth: string | undefined, name: string, branch: string, createPr: boolean, ndjson: string): void {
    if (!this.writer(res, auth)) return;
    const repo = this.repos.get(name);
    if (repo === undefined) return json(res, 404, { error: "Repository not found" }, { "x-error-code": "RepoNotFound" });
    const parent = repo.refs.get(branch) ?? repo.refs.get("main")!;
    const parentFiles = repo.commits.get(parent)!;
    const files = new Map(parentFiles);
    const regular = new Set([...parentFiles].filter(([path, bytes]) => !isLfs(parentFiles, path, bytes)).map(([path]) => path));
    REGULAR.set(files, regular);
    let summary = "";
    const lfsFiles: { path: string; oid: string; size: number }[] = [];
    const regularFiles: string[] = [];
    for (const line of ndjson.split("\n").filter((l) => l.trim() !== "")) {
      const { key, value } = JSON.parse(line) as { key: string; value: Record<string, unknown> };
      if (key === "header") summary = String(value.summary);
      else if (key === "file") {
        files.set(String(value.path), new Uint8Array(Buffer.from(String(value.content), "base64")));
        regular.add(String(value.path));
        regularFiles.push(String(value.path));
      } else if (key === "lfsFile") {
        const stored = this.lfsStore.get(String(value.oid));
        if (stored === undefined) return json(res, 422, { error: `LFS object ${value.oid} was never uploaded` });
        files.set(String(value.path), stored);
        regular.delete(String(value.path));
        lfsFiles.push({ path: String(value.path), oid: String(value.oid), size: Number(value.size) });
      } else if (key === "deletedFile") files.delete(String(value.path));
    }
    const oid = commitSha(files, `${parent}:${summary}`);
    repo.commits.set(oid, files);
    const target = createPr ? `refs/pr/${repo.received.filter((c) => c.createPr).length + 1}` : branch;
    repo.refs.set(target, oid);
    repo.received.push({ branch, createPr, summary, oid, lfsFiles, regularFiles });
    json(res, 200, { success: true, commitOid: oid, commitUrl: `${this.url}/${name}/commit/${oid}`, hookOutput: "", ...(createPr ? { pullRequestUrl: `${this.url}/${name}/discussions/1` } : {}) });
  }
}

function entries(files: Map<string, Uint8Array>): { type: string; oid: string; size: number; path: string; lfs?: { oid: string; size: number; pointerSize: number } }[] {
  return [...files].sort(([a], [b]) => (a < b ? -1 : 1)).map(([path, bytes]) => {
    if (isLfs(files, path, bytes)) {
      const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(bytes)}\nsize ${bytes.byteLength}\n`;
      return { type: "file", oid: gitSha1(new TextEncoder().encode(pointer)), size: bytes.byteLength, path, lfs: { oid: sha256(bytes), size: bytes.byteLength, pointerSize: pointer.length } };
    }
    return { type: "file", oid: gitSha1(bytes), size: bytes.byteLength, path };
  });
}

function commitSha(files: Map<string, Uint8Array>, salt: string): string {
  const listing = [...files].sort(([a], [b]) => (a < b ? -1 : 1)).map(([path, bytes]) => `${path}:${sha256(bytes)}`).join("\n");
  return createHash("sha1").update(salt).update(listing).digest("hex");
}

async function readBodyBytes(req: IncomingMessage): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return new Uint8Array(Buffer.concat(chunks));
}

async function readBody(req: IncomingMessage): Promise<string> {
  return Buffer.from(await readBodyBytes(req)).toString("utf8");
}


function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export function gitSha1(bytes: Uint8Array): string {
  return createHash("sha1").update(`blob ${bytes.byteLength}\0`).update(bytes).digest("hex");
}
