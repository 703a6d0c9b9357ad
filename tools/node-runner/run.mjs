#!/usr/bin/env node
// A second runner for the HTTP/1.0 conformance corpus, in Node.js with no
// dependencies: it replays the single-connection cases of an exported bundle
// (`python -m conformance export -o BUNDLE.json`) against a target and prints
// verdicts. cases/README.md is the specification it implements; where that page
// leaves a detail implicit, this file follows conformance/match.py and
// conformance/parse.py (the Python runner) so that both give the same verdicts.
//
//   node tools/node-runner/run.mjs --bundle BUNDLE.json --target HOST:PORT --root DIR
//        [--id GLOB ...] [--profile NAME] [--strict] [--json] [--timeout-scale F]
//
// Scenarios (cases with `connection`) are listed as skipped. Cases run one at a
// time. Every socket has a deadline, and every case a hard cap on top of it.

import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const USAGE =
  "usage: node run.mjs --bundle BUNDLE.json --target HOST:PORT --root DIR " +
  "[--id GLOB ...] [--profile NAME] [--strict] [--json] [--timeout-scale F]";

const BUNDLE_FORMAT = "http10-conformance-corpus";
const DEFAULT_PROFILE = "default";
const LEVELS = ["MUST", "SHOULD", "MAY"];
const DEFAULT_VERSIONS = ["HTTP/1.0", "HTTP/1.1"];
const DEFAULT_TIMEOUT = 5; // seconds, cases/README.md "Connection"
const MAX_KEEP = 64 * 1024 * 1024; // the size cap: bytes kept for judging
const SCENARIO_SKIP = "scenario: not supported by this runner";
const TRUNCATED_HEAD = "the header block ends without an empty line (truncated head)";
const MAX_HEADER_LINES = 10000;

class UsageError extends Error {}
class CaseError extends Error {}

// --- the escape rule ------------------------------------------------------------------

/** A bytes string of the case format -> Buffer (Latin-1); a char above U+00FF is an error. */
function toBytes(text, where) {
  if (typeof text !== "string") throw new CaseError(`${where}: expected a string`);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0xff) {
      const hex = code.toString(16).toUpperCase().padStart(4, "0");
      throw new CaseError(
        `${where}: character U+${hex} at index ${i} is above U+00FF (one byte per character; write \\u00XX)`,
      );
    }
  }
  return Buffer.from(text, "latin1");
}

// --- Python-compatible string helpers ---------------------------------------------------

// str.strip() with no argument: Python's whitespace, within Latin-1 (header text is
// Latin-1 decoded, so nothing above U+00FF ever reaches these functions).
const PY_SPACE = new Set([..."\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0"]);
function pyStrip(s, chars = null) {
  const set = chars === null ? PY_SPACE : new Set([...chars]);
  let a = 0;
  let b = s.length;
  while (a < b && set.has(s[a])) a++;
  while (b > a && set.has(s[b - 1])) b--;
  return s.slice(a, b);
}

/** fnmatch.fnmatchcase: `*`, `?`, `[seq]`, `[!seq]`; `*` also matches `/`. */
function globToRegExp(glob) {
  let out = "";
  let i = 0;
  while (i < glob.length) {
    const c = glob[i++];
    if (c === "*") out += "[\\s\\S]*";
    else if (c === "?") out += "[\\s\\S]";
    else if (c === "[") {
      let j = i;
      if (j < glob.length && glob[j] === "!") j++;
      if (j < glob.length && glob[j] === "]") j++;
      while (j < glob.length && glob[j] !== "]") j++;
      if (j >= glob.length) {
        out += "\\[";
      } else {
        let stuff = glob.slice(i, j);
        i = j + 1;
        let negate = false;
        if (stuff[0] === "!") {
          negate = true;
          stuff = stuff.slice(1);
        }
        const body = stuff.replace(/[\\\]^]/g, "\\$&");
        out += negate ? `[^${body}]` : `[${body}]`;
      }
    } else out += c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  return new RegExp(`^(?:${out})$`);
}
const globCache = new Map();
function fnmatch(name, glob) {
  if (!globCache.has(glob)) globCache.set(glob, globToRegExp(glob));
  return globCache.get(glob).test(name);
}

// --- Python regular expressions in JavaScript -------------------------------------------
// headers.match patterns are Python `re` patterns searched in a Latin-1 string. The
// common syntax is the same; what differs is translated here, and what cannot be
// translated makes the pattern invalid (judged as a finding, as Python does for a
// pattern it cannot compile).

const PY_W = "0-9A-Za-z_\\xaa\\xb2\\xb3\\xb5\\xb9\\xba\\xbc-\\xbe\\xc0-\\xd6\\xd8-\\xf6\\xf8-\\xff";
const PY_S = "\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0";
const PY_CLASS = { w: PY_W, s: PY_S, d: "0-9" };
const regexCache = new Map();

function pyRegExp(pattern) {
  if (regexCache.has(pattern)) return regexCache.get(pattern);
  let compiled = null;
  try {
    compiled = translatePyRegExp(pattern);
  } catch {
    compiled = null;
  }
  regexCache.set(pattern, compiled);
  return compiled;
}

function translatePyRegExp(pattern) {
  let flags = "";
  let multiline = false;
  let p = pattern;
  // Global inline flags at the start: (?i), (?s), (?m); a and u are the defaults of a
  // str pattern here; x and L have no JavaScript counterpart.
  for (;;) {
    const m = /^\(\?([aiLmsux]+)\)/.exec(p);
    if (!m) break;
    for (const f of m[1]) {
      if (f === "i" || f === "s") {
        if (!flags.includes(f)) flags += f;
      } else if (f === "m") {
        multiline = true; // anchors are translated; JavaScript's "m" also breaks at CR
      } else if (f === "x" || f === "L") throw new Error("unsupported flag");
    }
    p = p.slice(m[0].length);
  }
  let out = "";
  let inClass = false;
  let classStart = false;
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === "\\") {
      const n = p[i + 1];
      if (n === undefined) throw new Error("trailing backslash");
      i++;
      if (n === "w" || n === "s" || n === "d") {
        out += inClass ? PY_CLASS[n] : `[${PY_CLASS[n]}]`;
      } else if (n === "W" || n === "S" || n === "D") {
        if (inClass) throw new Error("negated class escape inside a set");
        out += `[^${PY_CLASS[n.toLowerCase()]}]`;
      } else if (!inClass && (n === "b" || n === "B")) {
        const w = `[${PY_W}]`;
        const boundary = `(?:(?<=${w})(?!${w})|(?<!${w})(?=${w}))`;
        out += n === "b" ? boundary : `(?!${boundary})`;
      } else if (!inClass && n === "A") {
        out += "(?<![\\s\\S])";
      } else if (!inClass && n === "Z") {
        out += "(?![\\s\\S])";
      } else {
        out += "\\" + n;
      }
      classStart = false;
      continue;
    }
    if (inClass) {
      if (c === "]" && classStart) out += "\\]"; // Python: a "]" first in a set is literal
      else if (c === "[") out += "\\[";
      else {
        if (c === "]") inClass = false;
        out += c;
      }
      classStart = false;
      continue;
    }
    if (c === "[") {
      inClass = true;
      out += "[";
      if (p[i + 1] === "^") {
        out += "^";
        i++;
      }
      classStart = true;
      continue;
    }
    if (c === "." && !flags.includes("s")) {
      out += "[^\\n]"; // Python's "." stops only at LF; JavaScript's also at CR
      continue;
    }
    if (c === "^") {
      out += multiline ? "(?:(?<![\\s\\S])|(?<=\\n))" : "(?<![\\s\\S])";
      continue;
    }
    if (c === "$") {
      // Python: the end, or before a newline at the end (any line end with (?m)).
      out += multiline ? "(?=\\n|(?![\\s\\S]))" : "(?=\\n?(?![\\s\\S]))";
      continue;
    }
    if (c === "(" && p[i + 1] === "?") {
      const rest = p.slice(i + 2);
      let m;
      if ((m = /^P<([A-Za-z_][A-Za-z0-9_]*)>/.exec(rest))) {
        out += `(?<${m[1]}>`;
        i += 1 + m[0].length;
        continue;
      }
      if ((m = /^P=([A-Za-z_][A-Za-z0-9_]*)\)/.exec(rest))) {
        out += `\\k<${m[1]}>`;
        i += 1 + m[0].length;
        continue;
      }
      if ((m = /^#[^)]*\)/.exec(rest))) {
        i += 1 + m[0].length;
        continue;
      }
      if (/^(:|=|!|<=|<!)/.test(rest)) {
        out += "(?";
        i += 1;
        continue;
      }
      throw new Error("unsupported group");
    }
    if (c === "{" && /^\{,\d+\}/.test(p.slice(i))) {
      out += "{0";
      continue;
    }
    if (/[*+?}]/.test(c) && p[i + 1] === "+") throw new Error("possessive quantifier");
    out += c;
  }
  if (inClass) throw new Error("unterminated set");
  return new RegExp(out, flags);
}

// --- HTTP-date (RFC 1945 section 3.3), as conformance/httpdate.py -----------------------

const WKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const MONTH_RE = `(${MONTHS.join("|")})`;
const TIME_RE = "([0-9]{2}):([0-9]{2}):([0-9]{2})";
const RFC1123 = new RegExp(`^(?:${WKDAYS.join("|")}), ([0-9]{2}) ${MONTH_RE} ([0-9]{4}) ${TIME_RE} GMT$`, "i");
const RFC850 = new RegExp(`^(?:${WEEKDAYS.join("|")}), ([0-9]{2})-${MONTH_RE}-([0-9]{2}) ${TIME_RE} GMT$`, "i");
const ASCTIME = new RegExp(`^(?:${WKDAYS.join("|")}) ${MONTH_RE} ([0-9]{2}| [0-9]) ${TIME_RE} ([0-9]{4})$`, "i");

/** Seconds since the epoch (UTC) of an HTTP-date in any of the three forms, or null. */
function parseHttpDate(text) {
  const t = pyStrip(text);
  let day, month, year, hh, mm, ss;
  let m;
  if ((m = RFC1123.exec(t))) [, day, month, year, hh, mm, ss] = m;
  else if ((m = RFC850.exec(t))) {
    [, day, month, year, hh, mm, ss] = m;
    year = Number(year) + (Number(year) >= 70 ? 1900 : 2000);
  } else if ((m = ASCTIME.exec(t))) [, month, day, hh, mm, ss, year] = m;
  else return null;
  const monthIndex = MONTHS.findIndex((name) => name.toLowerCase() === month.toLowerCase());
  [day, year, hh, mm, ss] = [day, year, hh, mm, ss].map((v) => Number(String(v).trim()));
  if (year < 1 || hh > 23 || mm > 59 || ss > 59 || day < 1) return null;
  const d = new Date(0);
  d.setUTCFullYear(year, monthIndex, day);
  d.setUTCHours(hh, mm, ss, 0);
  if (d.getUTCDate() !== day || d.getUTCMonth() !== monthIndex) return null; // 31 Feb
  return Math.floor(d.getTime() / 1000);
}

// --- parsing a response, as conformance/parse.py ---------------------------------------

const FULL_PREFIX = /^HTTP\/([0-9]+)\.([0-9]+) ([0-9]{3})/;
const STATUS_LINE = /^HTTP\/[0-9]+\.[0-9]+ [0-9]{3} [^\x00-\x08\x0a-\x1f\x7f]*$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** The offset just past the first empty line (LF LF or LF CR LF), or -1. */
function headEnd(buf) {
  let i = buf.indexOf(0x0a);
  while (i !== -1) {
    if (buf[i + 1] === 0x0a) return i + 2;
    if (buf[i + 1] === 0x0d && buf[i + 2] === 0x0a) return i + 3;
    i = buf.indexOf(0x0a, i + 1);
  }
  return -1;
}

function parseResponse(data) {
  if (data.length === 0) return { kind: "none", headers: [], body: Buffer.alloc(0), issues: [], completeHead: false };
  // The prefix holds no LF, so the first line is enough to find it.
  const prefix = FULL_PREFIX.exec(data.subarray(0, firstLineEnd(data)).toString("latin1"));
  if (!prefix) return { kind: "simple", headers: [], body: data, issues: [], completeHead: false };
  const issues = [];
  const end = headEnd(data);
  const complete = end !== -1;
  const head = complete ? data.subarray(0, end) : data;
  const body = complete ? data.subarray(end) : Buffer.alloc(0);
  const [lines, cut] = splitLines(head.toString("latin1"), complete, issues);
  checkStatusLine(lines[0], prefix, issues, lines.length > 1 || !cut);
  const headers = parseHeaders(cut ? lines.slice(1, -1) : lines.slice(1), issues);
  if (!complete) issues.push(TRUNCATED_HEAD);
  const [, major, minor, status] = prefix;
  return {
    kind: "full",
    versionText: `HTTP/${major}.${minor}`,
    version: [major, minor],
    status: Number(status),
    headers,
    body,
    completeHead: complete,
    issues,
  };
}

/** Where the first line ends: its LF, or the end of the bytes. */
function firstLineEnd(data) {
  const lf = data.indexOf(0x0a);
  return lf === -1 ? data.length : lf;
}

function splitLines(head, completeIn, issues) {
  let complete = completeIn;
  // bytes.split(b"\n", MAX_HEADER_LINES + 1): at most MAX_HEADER_LINES + 2 pieces.
  let raw = [];
  let from = 0;
  while (raw.length < MAX_HEADER_LINES + 1) {
    const lf = head.indexOf("\n", from);
    if (lf === -1) break;
    raw.push(head.slice(from, lf));
    from = lf + 1;
  }
  raw.push(head.slice(from));
  const tooMany = raw.length > MAX_HEADER_LINES + 1;
  let cut;
  if (tooMany) {
    raw = raw.slice(0, MAX_HEADER_LINES + 1);
    complete = false;
    cut = false;
  } else {
    cut = raw[raw.length - 1] !== "";
    if (!cut) raw.pop();
  }
  const blank = complete ? raw.pop() : "\r";
  const lines = [];
  raw.forEach((line, number) => {
    if (line.endsWith("\r")) line = line.slice(0, -1);
    else if (!(cut && number === raw.length - 1)) {
      issues.push(`${number === 0 ? "the status line" : `header line ${number}`} ends with a bare LF`);
    }
    lines.push(line);
  });
  if (blank !== "\r") issues.push("the empty line after the headers is a bare LF");
  if (tooMany) issues.push(`more than ${MAX_HEADER_LINES} header lines; the rest not parsed`);
  return [lines, cut];
}

function checkStatusLine(line, prefix, issues, checked) {
  if (checked && !STATUS_LINE.test(line)) issues.push(`the status line does not match HTTP/<digits>.<digits> SP 3DIGIT SP reason`);
  const [, major, minor] = prefix;
  if ((major.length > 1 && major[0] === "0") || (minor.length > 1 && minor[0] === "0")) {
    issues.push(`leading zeros in the version HTTP/${major}.${minor}`);
  }
}

function parseHeaders(lines, issues) {
  const headers = [];
  const text = (s) => pyStrip(s, " \t\r\n");
  lines.forEach((line, index) => {
    const number = index + 1;
    if (line[0] === " " || line[0] === "\t") {
      issues.push(`header line ${number} starts with whitespace (folding)`);
      if (headers.length) {
        const last = headers[headers.length - 1];
        last[1] = pyStrip(last[1] + " " + text(line));
      }
      return;
    }
    const colon = line.indexOf(":");
    if (colon === -1) {
      issues.push(`header line ${number} has no colon`);
      return;
    }
    let name = line.slice(0, colon);
    const value = line.slice(colon + 1);
    const trimmed = name.replace(/[ \t]+$/, "");
    if (trimmed !== name) {
      issues.push(`header line ${number} has whitespace before the colon`);
      name = trimmed;
    }
    if (!TOKEN.test(name)) issues.push(`header line ${number} has a name that is not a token`);
    headers.push([text(name), text(value)]);
  });
  return headers;
}

function headerValues(resp, name) {
  const wanted = name.toLowerCase();
  return resp.headers.filter(([key]) => key.toLowerCase() === wanted).map(([, value]) => value);
}

/** The method of the request sent: its first token, after leading CR and LF. */
function requestMethod(sent) {
  let i = 0;
  while (i < sent.length && (sent[i] === 0x0d || sent[i] === 0x0a)) i++;
  const isSpace = (b) => b === 0x20 || (b >= 0x09 && b <= 0x0d);
  while (i < sent.length && isSpace(sent[i])) i++;
  let j = i;
  while (j < sent.length && !isSpace(sent[j])) j++;
  return sent.subarray(i, j).toString("latin1");
}

// --- cases from the bundle --------------------------------------------------------------

const asList = (v) => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]);

function buildOutcome(raw, where) {
  const response = raw.response ?? "full";
  const headers = raw.headers ?? {};
  const body = raw.body ?? {};
  return {
    verdict: raw.verdict ?? "pass",
    response,
    status: asList(raw.status),
    statusClass: asList(raw.status_class).map((c) => Number(String(c)[0])),
    version: asList(raw.version).length ? asList(raw.version) : response === "full" ? DEFAULT_VERSIONS : [],
    present: asList(headers.present),
    absent: asList(headers.absent),
    equal: Object.entries(headers.equal ?? {}),
    match: Object.entries(headers.match ?? {}),
    fixture: Object.entries(headers.fixture ?? {}),
    bodyFixture: body.fixture ?? null,
    bodyEqual: "equal" in body ? toBytes(body.equal, `${where}.body.equal`) : null,
    bodyEmpty: body.empty ?? null,
    contains: asList(body.contains).map((s, i) => toBytes(s, `${where}.body.contains[${i}]`)),
    excludes: asList(body.excludes).map((s, i) => toBytes(s, `${where}.body.excludes[${i}]`)),
    framing: raw.framing ?? "strict",
    connection: raw.connection ?? "closed",
  };
}

function buildCase(id, raw) {
  const base = {
    id,
    area: id.split("/")[0],
    level: raw.level,
    tags: asList(raw.tags),
    liveness: raw.liveness === true,
  };
  if (!LEVELS.includes(raw.level)) throw new CaseError(`${id}: unknown level ${JSON.stringify(raw.level)}`);
  if (!raw.request) return { ...base, scenario: true };
  const req = raw.request;
  let parts;
  if ("data" in req) parts = [{ data: toBytes(req.data, `${id}: request.data`), repeat: 1, pauseMs: 0, chunk: 0, chunkPauseMs: 0 }];
  else {
    parts = asList(req.parts).map((p, i) => {
      if (asList(p.wait_for).length) throw new CaseError(`${id}: request.parts[${i}].wait_for needs a scenario`);
      return {
        data: toBytes(p.data ?? "", `${id}: request.parts[${i}].data`),
        repeat: p.repeat ?? 1,
        pauseMs: p.pause_ms ?? 0,
        chunk: p.chunk ?? 0,
        chunkPauseMs: p.chunk_pause_ms ?? 0,
      };
    });
  }
  const outcomes = asList(raw.expect).map((o, i) => buildOutcome(o, `${id}: expect[${i}]`));
  return {
    ...base,
    scenario: false,
    conn: {
      parts,
      halfClose: req.half_close === true,
      read: req.read ?? null,
      timeout: Number(req.timeout ?? DEFAULT_TIMEOUT),
      outcomes,
    },
  };
}

// --- selection (cases/README.md "Profiles"; conformance/select.py) ---------------------

function inProfile(c, prof) {
  const ids = asList(prof.ids);
  const areas = asList(prof.areas);
  if ((ids.length || areas.length) && !(areas.includes(c.area) || ids.some((g) => fnmatch(c.id, g)))) return false;
  const tags = asList(prof.tags);
  if (tags.length && !tags.some((t) => c.tags.includes(t))) return false;
  if (asList(prof.exclude_tags).some((t) => c.tags.includes(t))) return false;
  const levels = asList(prof.levels);
  return !levels.length || levels.includes(c.level);
}

function selectCases(cases, profiles, ids, profileName) {
  let name = profileName;
  if (name === null && !ids.length) name = DEFAULT_PROFILE;
  let chosen = cases;
  if (name !== null) {
    if (!Object.hasOwn(profiles, name)) {
      throw new UsageError(`unknown profile ${JSON.stringify(name)}; the profiles are: ${Object.keys(profiles).join(", ")}`);
    }
    chosen = chosen.filter((c) => inProfile(c, profiles[name]));
  }
  return chosen.filter((c) => !ids.length || ids.some((g) => fnmatch(c.id, g)));
}

// --- the document root -------------------------------------------------------------------

class DocRoot {
  constructor(root) {
    this.root = path.resolve(root);
    this.cache = new Map();
  }

  /** The file a root-relative fixture path names; ".." out of the root is refused. */
  file(p) {
    const rel = path.posix.normalize("root/" + p.replace(/^\/+/, ""));
    if (rel !== "root" && !rel.startsWith("root/")) throw new Error(`fixture ${p} is outside the document root`);
    return path.join(this.root, rel.slice("root".length));
  }

  stat(p) {
    const st = fs.statSync(this.file(p));
    if (!st.isFile()) throw new Error(`fixture ${p} is not a file`);
    return st;
  }

  size(p) {
    return this.stat(p).size;
  }

  /** Modification time in whole seconds since the epoch, as an HTTP-date carries it. */
  mtime(p) {
    return Math.floor(fs.statSync(this.file(p)).mtimeMs / 1000);
  }

  content(p) {
    if (!this.cache.has(p)) {
      this.stat(p);
      this.cache.set(p, fs.readFileSync(this.file(p)));
    }
    return this.cache.get(p);
  }
}

// --- judging, as conformance/match.py ----------------------------------------------------

/** The offset of the first differing byte, the shorter length for a prefix, or null. */
function firstDifference(a, b) {
  const n = Math.min(a.length, b.length);
  if (!a.subarray(0, n).equals(b.subarray(0, n))) {
    const block = 1 << 16;
    for (let start = 0; start < n; start += block) {
      const stop = Math.min(start + block, n);
      if (!a.subarray(start, stop).equals(b.subarray(start, stop))) {
        for (let i = start; i < stop; i++) if (a[i] !== b[i]) return i;
      }
    }
  }
  return a.length === b.length ? null : n;
}

function bodyDifference(got, want, what, prefixOk) {
  const at = firstDifference(got, want);
  if (at === null || (prefixOk && at === got.length)) return null;
  return `body differs from ${what} at byte ${at} (got ${got.length} bytes, expected ${want.length})`;
}

const digitsOnly = (s) => /^[0-9]+$/.test(s);
const canonicalDigits = (s) => s.replace(/^0+(?=[0-9])/, "");

function versionPair(text) {
  const m = /^HTTP\/([0-9]+)\.([0-9]+)$/.exec(text);
  return m ? `${canonicalDigits(m[1])}.${canonicalDigits(m[2])}` : null;
}

function headerProblem(resp, name, want, ok) {
  const values = headerValues(resp, name);
  if (!values.length) return `no ${name} header, expected ${want}`;
  if (values.some(ok)) return null;
  return `${name} ${JSON.stringify(values[0])}, expected ${want}`;
}

const MATCHERS = {
  response(ex, o) {
    if (o.response === "any" || o.response === ex.resp.kind) return null;
    return `got ${ex.resp.kind === "full" ? ex.resp.versionText + " " + ex.resp.status : ex.resp.kind === "simple" ? "a Simple-Response" : "no response"}, expected ${o.response}`;
  },
  status(ex, o) {
    if (!o.status.length || o.status.includes(ex.resp.status)) return null;
    return `status ${ex.resp.status ?? "none"}, expected ${o.status.join(" or ")}`;
  },
  statusClass(ex, o) {
    const s = ex.resp.status;
    if (!o.statusClass.length || (s !== undefined && o.statusClass.includes(Math.floor(s / 100)))) return null;
    return `status ${s ?? "none"}, expected ${o.statusClass.map((d) => `${d}xx`).join(" or ")}`;
  },
  version(ex, o) {
    // o.version is the outcome's list, or the default pair for a `full` outcome.
    const allowed = o.version;
    const resp = ex.resp;
    if (!allowed.length) return null;
    if (resp.kind !== "full") return `no version, expected ${allowed.join(" or ")}`;
    if (allowed.includes(resp.versionText)) return null;
    // Compared as integers; a version written with leading zeros only as written.
    const pair = `${canonicalDigits(resp.version[0])}.${canonicalDigits(resp.version[1])}`;
    if (`HTTP/${pair}` === resp.versionText && allowed.map(versionPair).includes(pair)) return null;
    return `version ${resp.versionText}, expected ${allowed.join(" or ")}`;
  },
  framing(ex, o) {
    const resp = ex.resp;
    if (o.framing !== "strict" || resp.kind !== "full") return null;
    const problems = resp.issues.filter((i) => !(ex.stopped && i === TRUNCATED_HEAD));
    const cl = contentLengthProblem(ex);
    if (cl) problems.push(cl);
    return problems.length ? problems.join("; ") : null;
  },
  present(ex, o) {
    const missing = o.present.filter((n) => !headerValues(ex.resp, n).length);
    return missing.length ? `no ${missing.join(", ")} header` : null;
  },
  absent(ex, o) {
    const found = o.absent.filter((n) => headerValues(ex.resp, n).length);
    return found.length ? `unexpected header ${found.join(", ")}` : null;
  },
  equal(ex, o) {
    const problems = o.equal.map(([name, want]) =>
      headerProblem(ex.resp, name, JSON.stringify(pyStrip(want)), (v) => v === pyStrip(want)),
    );
    return problems.filter(Boolean).join("; ") || null;
  },
  match(ex, o) {
    const problems = o.match.map(([name, pattern]) => {
      const re = pyRegExp(pattern);
      if (!re) return `the case's pattern for ${name} is not a valid regex (for this runner): ${pattern}`;
      return headerProblem(ex.resp, name, `/${pattern}/`, (v) => re.test(v));
    });
    return problems.filter(Boolean).join("; ") || null;
  },
  fixture(ex, o) {
    const problems = o.fixture.map(([name, spec]) => {
      const colon = spec.indexOf(":");
      const prop = colon === -1 ? spec : spec.slice(0, colon);
      const p = colon === -1 ? "" : spec.slice(colon + 1);
      if (prop !== "size" && prop !== "mtime") return `the case's fixture property ${spec} is unknown`;
      try {
        if (prop === "size") {
          const size = ex.root.size(p);
          return headerProblem(ex.resp, name, `${size} (the size of ${p})`, (v) => digitsOnly(v) && BigInt(v) === BigInt(size));
        }
        const when = ex.root.mtime(p);
        return headerProblem(ex.resp, name, `${new Date(when * 1000).toUTCString()} (the mtime of ${p})`, (v) => parseHttpDate(v) === when);
      } catch (error) {
        return `fixture ${p} cannot be read: ${error.message}`;
      }
    });
    return problems.filter(Boolean).join("; ") || null;
  },
  bodyFixture(ex, o) {
    if (o.bodyFixture === null) return null;
    let content;
    try {
      content = ex.root.content(o.bodyFixture);
    } catch (error) {
      return `fixture ${o.bodyFixture} cannot be read: ${error.message}`;
    }
    return bodyDifference(ex.resp.body, content, o.bodyFixture, ex.stopped);
  },
  bodyEqual(ex, o) {
    if (o.bodyEqual === null) return null;
    return bodyDifference(ex.resp.body, o.bodyEqual, "the expected bytes", ex.stopped);
  },
  bodyEmpty(ex, o) {
    const size = ex.resp.body.length;
    if (o.bodyEmpty === null || o.bodyEmpty === (size === 0)) return null;
    return size ? `body has ${size} bytes, expected none` : "body is empty, expected bytes";
  },
  contains(ex, o) {
    const missing = o.contains.filter((s) => s.length && ex.resp.body.indexOf(s) === -1);
    return missing.length ? `body lacks ${missing.map((s) => JSON.stringify(s.toString("latin1"))).join(", ")}` : null;
  },
  excludes(ex, o) {
    const found = o.excludes.filter((s) => s.length && ex.obs.received.indexOf(s) !== -1);
    return found.length ? `the response contains ${found.map((s) => JSON.stringify(s.toString("latin1"))).join(", ")}` : null;
  },
  connection(ex, o) {
    const end = ex.obs.end;
    if (o.connection === "any" || end === "limit") return null;
    if (o.connection === "closed" && (end === "closed" || end === "reset")) return null;
    if (o.connection === "open" && end === "timeout") return null;
    return `the connection ended by ${end}, expected ${o.connection === "closed" ? "a close" : "it to stay open"}`;
  },
};

function contentLengthProblem(ex) {
  const resp = ex.resp;
  if (ex.stopped || !resp.completeHead || bodyless(ex.method, resp.status)) return null;
  const values = headerValues(resp, "Content-Length");
  if (!values.length) return null;
  if (new Set(values).size > 1) return `Content-Length has conflicting values ${values.join(", ")}`;
  if (!digitsOnly(values[0])) return `Content-Length ${JSON.stringify(values[0])} is not a number`;
  if (BigInt(values[0]) !== BigInt(resp.body.length)) return `Content-Length ${values[0]} but ${resp.body.length} body bytes`;
  return null;
}

function bodyless(method, status) {
  if (method === "HEAD") return true;
  return status !== undefined && ((status >= 100 && status < 200) || status === 204 || status === 304);
}

/** The raw verdict of a connection and, when nothing matched, the nearest outcome's findings. */
function judge(conn, obs, root) {
  const ex = {
    obs,
    root,
    resp: parseResponse(obs.received),
    method: requestMethod(obs.sent),
    stopped: obs.end === "limit" || obs.receivedTotal > obs.received.length,
  };
  let nearest = null;
  for (const [index, outcome] of conn.outcomes.entries()) {
    const wrongKind = MATCHERS.response(ex, outcome);
    const findings = wrongKind
      ? [wrongKind, MATCHERS.connection(ex, outcome)].filter(Boolean)
      : Object.values(MATCHERS).map((m) => m(ex, outcome)).filter(Boolean);
    if (!findings.length) return { verdict: outcome.verdict, index, findings: [] };
    const key = [wrongKind ? 1 : 0, findings.length, index];
    if (nearest === null || key[0] < nearest.key[0] || (key[0] === nearest.key[0] && key[1] < nearest.key[1])) {
      nearest = { key, findings };
    }
  }
  return { verdict: "fail", index: null, findings: nearest ? nearest.findings : ["the case lists no outcome"] };
}

// cases/README.md, Verdicts: raw -> [final, final with --strict], per level.
const LEVEL_TABLE = {
  pass: { MUST: ["pass", "pass"], SHOULD: ["pass", "pass"], MAY: ["pass", "pass"] },
  fail: { MUST: ["fail", "fail"], SHOULD: ["warn", "fail"], MAY: ["info", "info"] },
  warn: { MUST: ["warn", "fail"], SHOULD: ["warn", "fail"], MAY: ["info", "info"] },
  info: { MUST: ["info", "info"], SHOULD: ["info", "info"], MAY: ["info", "info"] },
};

function finalVerdict(raw, level, strict) {
  if (raw === "error" || raw === "skip") return raw;
  return LEVEL_TABLE[raw][level][strict ? 1 : 0];
}

// --- the wire ---------------------------------------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/**
 * Connect, send the parts, optionally half-close, read; never rejects.
 * Returns { sent, received, receivedTotal, end, error } where end is closed, reset,
 * timeout, limit, refused or error (cases/README.md "Reading").
 *
 * Node reads as bytes arrive, even while the script is still sending; the bytes are
 * the same a reader that starts after sending would get (the kernel keeps them, and
 * an EOF or a reset comes after them either way). Only `read = 0` ignores them.
 */
function play(conn, target, scale) {
  return new Promise((resolve) => {
    const limitMs = conn.timeout * scale * 1000;
    const deadline = Date.now() + limitMs;
    const chunks = [];
    const sent = [];
    let kept = 0;
    let total = 0;
    let connected = false;
    let reading = false; // the script has sent everything and now only reads
    let finished = false;
    let terminal = null; // the first end the socket reported: closed, reset or error
    let error = "";
    let wake = null; // cuts the sender's current wait short when the socket ends

    const socket = new net.Socket({ allowHalfOpen: true });
    // A failed write (EPIPE, ECONNRESET: the server answered early and closed) must
    // not destroy the socket: Node would then drop the answer still waiting in the
    // kernel, which a reader that sends first and reads after (the Python runner,
    // most clients) gets. The failure is kept here and sending stops; reading goes
    // on to the server's bytes and the EOF or reset after them.
    let writeFailed = null;
    const keepOnWriteError = (method) => {
      const original = socket[method].bind(socket);
      socket[method] = (...args) => {
        const cb = args.pop();
        original(...args, (err) => {
          if (err) writeFailed = writeFailed ?? err;
          cb();
        });
      };
    };
    keepOnWriteError("_write");
    keepOnWriteError("_writev");

    const finish = (end) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      if (wake) wake();
      resolve({ sent: Buffer.concat(sent), received: Buffer.concat(chunks), receivedTotal: total, end, error });
    };
    const settle = (how) => {
      if (terminal === null) terminal = how;
      if (wake) wake();
      if (reading) finish(terminal);
    };
    // The connection's deadline: from connect to the end of the response.
    const timer = setTimeout(() => {
      if (connected) finish("timeout");
      else {
        error = `connecting to ${target.host}:${target.port} timed out after ${(limitMs / 1000).toFixed(1)} s`;
        finish("error");
      }
    }, limitMs);

    socket.on("data", (chunk) => {
      if (conn.read === 0 || finished) return; // read 0: nothing is ever read
      let piece = chunk;
      if (conn.read !== null && total + piece.length >= conn.read) piece = piece.subarray(0, conn.read - total);
      total += piece.length;
      if (kept < MAX_KEEP) {
        const keep = piece.subarray(0, MAX_KEEP - kept);
        chunks.push(keep);
        kept += keep.length;
      }
      if (conn.read !== null && total >= conn.read) finish("limit");
    });
    socket.on("end", () => settle("closed"));
    socket.on("error", (err) => {
      if (!connected) {
        if (err.code === "ECONNREFUSED") {
          error = `connection refused by ${target.host}:${target.port}`;
          finish("refused");
        } else {
          error = `cannot connect to ${target.host}:${target.port}: ${err.code || err.message}`;
          finish("error");
        }
        return;
      }
      if (err.code === "ECONNRESET") settle("reset");
      // half_close on a connection the server already dropped (ENOTCONN).
      else if (err.syscall === "shutdown") settle("closed");
      // EPIPE: the peer had closed (its FIN came first), and our write met its reset.
      else if (err.code === "EPIPE") settle("closed");
      else {
        if (terminal === null) error = `the connection failed: ${err.code || err.message}`;
        settle("error");
      }
    });
    socket.on("close", () => settle("closed"));

    socket.connect({ host: target.host, port: target.port }, async () => {
      connected = true;
      socket.setNoDelay(true);
      await send();
      if (finished) return;
      if (conn.read === 0) {
        finish("limit"); // sent, then closed without reading
        return;
      }
      reading = true;
      if (terminal !== null) finish(terminal);
    });

    /** Wait until a write reaches the kernel (true), or the socket fails (false). */
    const write = (buf) =>
      new Promise((ok) => {
        if (socket.destroyed || socket.writableEnded || writeFailed) return ok(false);
        wake = () => ok(false);
        socket.write(buf, (err) => ok(!err && !writeFailed));
      }).finally(() => {
        wake = null;
      });

    const pause = (ms) =>
      new Promise((ok) => {
        wake = ok;
        setTimeout(ok, Math.max(0, Math.min(ms, deadline - Date.now())));
      }).finally(() => {
        wake = null;
      });

    async function send() {
      let count = 0;
      for (const part of conn.parts) {
        if (part.pauseMs) await pause(part.pauseMs);
        const payload = part.repeat === 1 ? part.data : Buffer.concat(Array(part.repeat).fill(part.data));
        const step = part.chunk > 0 ? part.chunk : Math.max(payload.length, 1);
        for (let offset = 0; offset < payload.length; offset += step) {
          if (offset && part.chunkPauseMs) await pause(part.chunkPauseMs);
          if (finished) return;
          const piece = payload.subarray(offset, offset + step);
          if (!(await write(piece))) {
            // The server may answer and close before the request is complete (an
            // early 400 or 414): what it sent is still read.
            const why = writeFailed ? ` (${writeFailed.code || writeFailed.message})` : "";
            error = `the server closed the connection after ${count} request bytes${why}`;
            return;
          }
          sent.push(piece);
          count += piece.length;
        }
      }
      if (conn.halfClose && !socket.destroyed) socket.end();
    }
  });
}

function parseTarget(text) {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):([0-9]{1,5})$/.exec(text ?? "");
  if (!m || Number(m[3]) < 1 || Number(m[3]) > 65535) throw new UsageError(`--target must be HOST:PORT, got ${JSON.stringify(text)}`);
  return { host: m[1] ?? m[2], port: Number(m[3]) };
}

// --- running cases -----------------------------------------------------------------------

/** The liveness probe: a plain GET of the canary on a fresh connection. */
function canaryConnection(fixtures) {
  return {
    parts: [{ data: Buffer.from(`GET /${fixtures.canary.path} HTTP/1.0\r\n\r\n`, "latin1"), repeat: 1, pauseMs: 0, chunk: 0, chunkPauseMs: 0 }],
    halfClose: false,
    read: null,
    timeout: DEFAULT_TIMEOUT,
    outcomes: [],
  };
}

/** A case's hard cap on top of the connection's own deadline. */
function withCap(promise, ms, fallback) {
  let timer;
  return Promise.race([
    promise,
    new Promise((resolve) => {
      timer = setTimeout(() => resolve(fallback), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function runCase(c, ctx) {
  if (c.scenario) return { id: c.id, verdict: "skip", reason: SCENARIO_SKIP };
  const cap = c.conn.timeout * ctx.scale * 2000 + 5000;
  const obs = await withCap(play(c.conn, ctx.target, ctx.scale), cap, null);
  if (obs === null) return { id: c.id, verdict: "error", reason: "the connection did not finish in time" };
  if (obs.end === "refused" || (obs.end === "error" && obs.received.length === 0)) {
    return { id: c.id, verdict: "error", reason: obs.error };
  }
  const judgement = judge(c.conn, obs, ctx.root);
  let verdict = finalVerdict(judgement.verdict, c.level, ctx.strict);
  let reason = judgement.verdict === "pass" ? "" : judgement.findings.join("; ");
  if (c.liveness) {
    // As the Python runner judges it: any answer that carries the canary's bytes
    // (a wrong status line or framing is for the cases to judge, not the probe).
    const probe = await withCap(play(ctx.canary, ctx.target, ctx.scale), DEFAULT_TIMEOUT * ctx.scale * 2000 + 5000, null);
    if (probe === null || probe.received.indexOf(ctx.canaryData) === -1) {
      verdict = "fail";
      const got = probe === null ? "no end" : probe.received.length ? `${probe.received.length} bytes without the canary's content` : `no answer (${probe.error || probe.end})`;
      reason = `after this case the server no longer answered a plain GET /${ctx.fixtures.canary.path} on a new connection (${got})`;
    }
  }
  return { id: c.id, verdict, reason };
}

function parseArgs(argv) {
  const opts = { bundle: null, target: null, root: null, ids: [], profile: null, strict: false, json: false, scale: 1 };
  const takesValue = { "--bundle": "bundle", "--target": "target", "--root": "root", "--id": "ids", "--profile": "profile", "--timeout-scale": "scale" };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value;
    const eq = arg.indexOf("=");
    if (arg.startsWith("--") && eq !== -1) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    if (arg === "--strict" || arg === "--json") {
      if (value !== undefined) throw new UsageError(`${arg} takes no value`);
      opts[arg.slice(2)] = true;
    } else if (arg === "-h" || arg === "--help") {
      process.stdout.write(USAGE + "\n");
      process.exit(0);
    } else if (Object.hasOwn(takesValue, arg)) {
      if (value === undefined) {
        if (i + 1 >= argv.length) throw new UsageError(`${arg} needs a value`);
        value = argv[++i];
      }
      const key = takesValue[arg];
      if (key === "ids") opts.ids.push(value);
      else opts[key] = value;
    } else throw new UsageError(`unknown argument ${JSON.stringify(argv[i])}`);
  }
  for (const key of ["bundle", "target", "root"]) if (!opts[key]) throw new UsageError(`--${key} is required`);
  opts.scale = Number(opts.scale);
  if (!Number.isFinite(opts.scale) || opts.scale <= 0) throw new UsageError("--timeout-scale must be a positive number");
  return opts;
}

function loadBundle(file) {
  let bundle;
  try {
    bundle = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (error) {
    throw new UsageError(`cannot read the bundle ${file}: ${error.message}`);
  }
  if (bundle?.format !== BUNDLE_FORMAT || bundle.version !== 1 || bundle.case_format !== 1) {
    throw new UsageError(`${file} is not a version 1 ${BUNDLE_FORMAT} bundle`);
  }
  return bundle;
}

async function main() {
  // A reader that goes away (`| head -1`) ends the run, as SIGPIPE would.
  process.stdout.on("error", (err) => process.exit(err.code === "EPIPE" ? 1 : 2));
  const opts = parseArgs(process.argv.slice(2));
  const bundle = loadBundle(opts.bundle);
  const target = parseTarget(opts.target);
  if (!fs.existsSync(opts.root) || !fs.statSync(opts.root).isDirectory()) throw new UsageError(`--root ${opts.root} is not a folder`);
  let cases;
  try {
    cases = Object.keys(bundle.cases).sort().map((id) => buildCase(id, bundle.cases[id]));
  } catch (error) {
    if (error instanceof CaseError) throw new UsageError(`invalid case: ${error.message}`);
    throw error;
  }
  const selected = selectCases(cases, bundle.profiles_file?.profile ?? {}, opts.ids, opts.profile);
  if (!selected.length) throw new UsageError("the selection is empty");
  const fixtures = bundle.fixtures_file;
  const ctx = {
    target,
    scale: opts.scale,
    strict: opts.strict,
    root: new DocRoot(opts.root),
    fixtures,
    canary: canaryConnection(fixtures),
    canaryData: toBytes(fixtures.canary.data, "fixtures_file.canary.data"),
  };
  const results = [];
  for (const c of selected) {
    const r = await runCase(c, ctx);
    results.push(r);
    if (!opts.json) process.stdout.write(`${r.verdict.toUpperCase()} ${r.id}${r.reason ? "  " + oneLine(r.reason) : ""}\n`);
  }
  const count = (v) => results.filter((r) => r.verdict === v).length;
  if (opts.json) {
    process.stdout.write(JSON.stringify(results.map(({ id, verdict, reason }) => (reason ? { id, verdict, reason } : { id, verdict })), null, 1) + "\n");
  } else {
    const errors = count("error") ? `, ${count("error")} errors` : "";
    process.stdout.write(
      `${count("pass")} passed, ${count("fail")} failed, ${count("warn")} warned, ${count("info")} info, ${count("skip")} skipped${errors}\n`,
    );
  }
  return count("fail") || count("error") ? 1 : 0;
}

function oneLine(text) {
  return text.replace(/[\x00-\x1f\x7f]/g, (ch) => (ch === "\n" ? "\\n" : ch === "\r" ? "\\r" : "\\x" + ch.charCodeAt(0).toString(16).padStart(2, "0")));
}

// Run only when executed, so that tests and other tools can import the functions.
function executedDirectly() {
  try {
    return fs.realpathSync(process.argv[1]) === fs.realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
const executed = executedDirectly();
if (executed) {
  main().then(
    (status) => {
      process.exitCode = status;
      // Every socket is destroyed and every timer cleared by now; exit anyway so that
      // nothing left behind can keep the process alive.
      setTimeout(() => process.exit(status), 100).unref();
    },
    (error) => {
      if (error instanceof UsageError) {
        process.stderr.write(`run.mjs: ${error.message}\n`);
        process.exit(2);
      }
      process.stderr.write(`run.mjs: internal error: ${error?.stack ?? error}\n`);
      process.exit(1);
    },
  );
}

export { parseResponse, headerValues, requestMethod, parseHttpDate, pyRegExp, fnmatch, judge, buildCase, buildOutcome, selectCases, finalVerdict, toBytes, DocRoot };
