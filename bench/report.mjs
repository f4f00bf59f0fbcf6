// Turns the JSON that bench/run.sh collects into the Markdown report.
//   node report.mjs main ALL.json     the main benchmark
//   node report.mjs sse SSE.json      the SSE step
import { readFileSync } from 'node:fs';

const [mode, file] = process.argv.slice(2);
const data = JSON.parse(readFileSync(file, 'utf8'));
const out = [];
const p = (s = '') => out.push(s);

const f = (v, d = 1) => (v === null || v === undefined || Number.isNaN(v) ? '–' : Number(v).toFixed(d));
const n0 = (v) => (v === null || v === undefined || Number.isNaN(v) ? '–' : Math.round(v).toLocaleString('en-US'));
const mib = (kb) => (kb > 0 ? (kb / 1024).toFixed(1) : '–');
const ratio = (a, b) => (a > 0 && b > 0 ? (a / b).toFixed(2) + '×' : '–');
const median = (xs) => {
    const s = xs.filter((x) => x !== null && !Number.isNaN(x)).sort((a, b) => a - b);
    if (!s.length) return NaN;
    const m = Math.floor(s.length / 2);
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
/*
 * One cell from the runs of the same target, query and concurrency (--repeat):
 * each figure the median of the runs, except error counts (summed: an error in
 * any run counts), peak RSS (the highest) and "other %" (worked out for each
 * run from that run's own figures, then the highest, so one disturbed run
 * shows; the medians of busy time and CPU may come from different runs).
 * `runs` holds each run's req/s.
 */
function combine(xs) {
    if (xs.length <= 1) return xs[0];
    const merge = (vs, key) => {
        const first = vs[0];
        if (typeof first === 'number') {
            if (key === 'errors' || key.startsWith('err_')) return vs.reduce((a, v) => a + v, 0);
            if (key === 'hwm_kb') return Math.max(...vs);
            return median(vs);
        }
        if (first && typeof first === 'object' && !Array.isArray(first)) {
            const o = {};
            for (const k of Object.keys(first)) o[k] = merge(vs.map((v) => v?.[k]), k);
            return o;
        }
        return first;
    };
    const others = xs.map(other).filter((v) => !Number.isNaN(v));
    return { ...merge(xs, ''), runs: xs.map((x) => x.rps), other_pct: others.length ? Math.max(...others) : NaN };
}
// req/s, with the spread of the runs when there were several.
const rpsCell = (x) => (x.runs ? `${n0(x.rps)} (${n0(Math.min(...x.runs))}–${n0(Math.max(...x.runs))})` : n0(x.rps));

function errCell(c) {
    if (!c.errors) return '0';
    const parts = [];
    for (const [k, label] of [['err_http', 'non-2xx'], ['err_rpc', 'JSON-RPC/Hrana error'], ['err_tool', 'isError'],
        ['err_body', 'bad body'], ['err_io', 'I/O'], ['err_timeout', 'timeout']])
        if (c[k]) parts.push(`${c[k]} ${label}`);
    return `**${c.errors}** (${parts.join(', ')})`;
}

// Busy CPU of the machine outside the measured processes and the load generator, % of all cores
// (of a combined cell, the highest of its runs').
function other(x) {
    if (x.other_pct !== undefined) return x.other_pct;
    if (x.machine_busy_ms === undefined || !x.window_s) return NaN;
    const ours = Object.values(x.procs).reduce((a, p) => a + (p.cpu_ms || 0), 0) + x.loadgen_cpu_ms;
    return Math.max(0, (x.machine_busy_ms - ours) / (x.window_s * 1000 * NPROC)) * 100;
}
let NPROC = 1;

function header(m, title) {
    NPROC = Number(m.nproc) || 1;
    p(`# ${title}`);
    p();
    p(`- Command: \`${m.cmd}\``);
    p(`- Machine: ${m.nproc} CPUs (\`nproc\`), ${m.cpu}, ${m.mem} RAM, Linux ${m.kernel}`);
    p(`- Date: ${m.date}; turso-mcp: ${m.turso_mcp} (git ${m.rev}), built RelWithDebInfo; ${m.libs}`);
    p(`- Upstream: \`tursodb --sync-server\` (${m.tursodb}), one process shared by all targets, table \`items\` of 10,000 rows`);
    p(`- Node peer: bench/node-peer/server.mjs on Node ${m.node}; @modelcontextprotocol/sdk 1.32.2, @libsql/client 0.18.0`);
    p(`- Load: bench/loadgen (closed loop, HTTP/1.1 keep-alive unless the server closes), ${m.warmup} s warm-up + ${m.duration} s measured per cell, 127.0.0.1 only`);
    if (m.repeat > 1)
        p(`- Each upstream-query cell ran ${m.repeat} times, the three targets in turn each time; its figures are the medians of those runs (req/s also shows their range), errors their sum, peak RSS and "other %" their highest`);
    p(`- turso-mcp ran as \`turso-mcp ${m.server_flags}\``);
    p(`- Load average (1, 5, 15 min) at the start: ${m.loadavg_start}; at the end: ${m.loadavg_end ?? '?'}`);
    p();
}

const TARGET = { direct: 'direct upstream', turso_query: 'turso-mcp turso_query', node_peer: 'Node peer (SDK + @libsql/client)' };
const QUERY = { point: 'point SELECT by id', rows100: '100-row result', rows5000: '5,000-row result', tools_list: 'tools/list', healthz: 'GET /healthz',
    point_alone: 'point SELECT, alone', point_mixed: 'point SELECT next to 5,000-row results', rows5000_background: '5,000-row results (background)' };

if (mode === 'main') {
    const m = data.meta;
    header(m, 'turso-mcp benchmark');
    const cells = data.cells;
    const get = (t, q, c) => combine(cells.filter((x) => x.target === t && x.query === q && x.conns === c));

    p('## Throughput, latency, errors, CPU and memory');
    p();
    p('Server CPU is utime+stime of the serving process (tursodb for the direct rows) over the measured window, divided by the');
    p('answers in it; upstream CPU is tursodb\'s in the same window. Peak RSS is VmHWM, reset through `clear_refs` when the');
    p('window starts. Errors: non-2xx, JSON-RPC `"error"`, `"isError":true`, a Hrana error, a body without the expected last row,');
    p('I/O errors and timeouts (30 s), each answer checked. Load-generator CPU shows how much of the 2 cores the client took.');
    p();
    p('"Other %" is the machine\'s busy time (user, system and steal; interrupt time left out) not spent in the measured');
    p('processes or the load generator, as a share of both cores: anything above a few % means something else was running');
    p('on the machine during that cell, and its numbers are less trustworthy.');
    if (m.repeat > 1) p('Of a cell run several times it is the highest of the runs, so a single disturbed run shows.');
    p();
    p('| query | conc | target | req/s | p50 ms | p99 ms | errors | server CPU µs/call | upstream CPU µs/call | peak RSS MiB | loadgen CPU % | other % |');
    p('| --- | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |');
    for (const q of ['point', 'rows100', 'rows5000'])
        for (const c of [1, 16, 64])
            for (const t of ['direct', 'turso_query', 'node_peer']) {
                const x = get(t, q, c);
                if (!x) continue;
                const s = x.procs.server || {};
                const u = t === 'direct' ? null : x.procs.upstream;
                p(`| ${QUERY[q]} | ${c} | ${TARGET[t]} | ${rpsCell(x)} | ${f(x.p50_ms, 2)} | ${f(x.p99_ms, 2)} | ${errCell(x)} | ` +
                  `${n0(s.cpu_us_per_req)} | ${u ? n0(u.cpu_us_per_req) : '–'} | ${mib(s.hwm_kb)} | ${f(x.loadgen_cpu_ms / x.window_s / 10, 0)} | ${f(other(x), 0)} |`);
            }
    p();

    p('## Ratios');
    p();
    p('turso_query ÷ direct upstream and turso_query ÷ Node peer, same query and concurrency. For req/s above 1× is faster;');
    p('for CPU per call below 1× is cheaper (turso-mcp\'s CPU per call against tursodb\'s own, or against the Node process\'s).');
    p();
    p('| query | conc | req/s vs direct | req/s vs Node peer | CPU/call vs direct | CPU/call vs Node peer |');
    p('| --- | ---: | ---: | ---: | ---: | ---: |');
    for (const q of ['point', 'rows100', 'rows5000'])
        for (const c of [1, 16, 64]) {
            const d = get('direct', q, c), t = get('turso_query', q, c), n = get('node_peer', q, c);
            if (!d || !t || !n) continue;
            const cpu = (x) => x.procs.server.cpu_us_per_req;
            p(`| ${QUERY[q]} | ${c} | ${ratio(t.rps, d.rps)} | ${ratio(t.rps, n.rps)} | ${ratio(cpu(t), cpu(d))} | ${ratio(cpu(t), cpu(n))} |`);
        }
    p();

    p('## tools/list (no upstream call)');
    p();
    p('| target | p50 ms at c=1 | p99 ms at c=1 | req/s at c=1 | req/s at c=16 | p50 ms at c=16 | errors | server CPU µs/call at c=16 | peak RSS MiB | other % |');
    p('| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |');
    for (const t of ['turso_query', 'node_peer']) {
        const a = get(t, 'tools_list', 1), b = get(t, 'tools_list', 16);
        if (!a || !b) continue;
        const name = t === 'turso_query' ? 'turso-mcp' : TARGET[t];
        p(`| ${name} | ${f(a.p50_ms, 3)} | ${f(a.p99_ms, 3)} | ${n0(a.rps)} | ${n0(b.rps)} | ${f(b.p50_ms, 3)} | ` +
          `${a.errors + b.errors ? errCell({ ...b, errors: a.errors + b.errors, err_http: a.err_http + b.err_http, err_rpc: a.err_rpc + b.err_rpc, err_tool: a.err_tool + b.err_tool, err_body: a.err_body + b.err_body, err_io: a.err_io + b.err_io, err_timeout: a.err_timeout + b.err_timeout }) : '0'} | ` +
          `${n0(b.procs.server.cpu_us_per_req)} | ${mib(Math.max(a.procs.server.hwm_kb, b.procs.server.hwm_kb))} | ${f(Math.max(other(a), other(b)), 0)} |`);
    }
    const ha = get('turso_query', 'healthz', 1), hb = get('turso_query', 'healthz', 16);
    if (ha && hb)
        p(`| turso-mcp GET /healthz (an answer that does no work: this machine's floor) | ${f(ha.p50_ms, 3)} | ${f(ha.p99_ms, 3)} | ${n0(ha.rps)} | ${n0(hb.rps)} | ${f(hb.p50_ms, 3)} | ${ha.errors + hb.errors ? '**' + (ha.errors + hb.errors) + '**' : '0'} | ` +
          `${n0(hb.procs.server.cpu_us_per_req)} | ${mib(Math.max(ha.procs.server.hwm_kb, hb.procs.server.hwm_kb))} | ${f(Math.max(other(ha), other(hb)), 0)} |`);
    const a = get('turso_query', 'tools_list', 1), b = get('turso_query', 'tools_list', 16);
    const na = get('node_peer', 'tools_list', 1), nb = get('node_peer', 'tools_list', 16);
    if (a && na && b && nb)
        p(`| turso-mcp ÷ Node peer | ${ratio(a.p50_ms, na.p50_ms)} | ${ratio(a.p99_ms, na.p99_ms)} | ${ratio(a.rps, na.rps)} | ${ratio(b.rps, nb.rps)} | ${ratio(b.p50_ms, nb.p50_ms)} | | ${ratio(b.procs.server.cpu_us_per_req, nb.procs.server.cpu_us_per_req)} | | |`);
    p();

    p('## Interference: a point SELECT next to big results');
    p();
    p('4 clients run the point SELECT, first alone, then while 2 other clients keep pulling the 5,000-row result from the same server.');
    p();
    p('| target | alone: req/s | alone: p50 ms | alone: p99 ms | mixed: req/s | mixed: p50 ms | mixed: p99 ms | 5,000-row req/s meanwhile | errors | other % |');
    p('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |');
    for (const t of ['direct', 'turso_query', 'node_peer']) {
        const a = get(t, 'point_alone', 4), b = get(t, 'point_mixed', 4), g = cells.find((x) => x.target === t && x.query === 'rows5000_background');
        if (!a || !b || !g) continue;
        const e = a.errors + b.errors + g.errors;
        p(`| ${TARGET[t]} | ${n0(a.rps)} | ${f(a.p50_ms, 2)} | ${f(a.p99_ms, 2)} | ${n0(b.rps)} | ${f(b.p50_ms, 2)} | ${f(b.p99_ms, 2)} | ${f(g.rps, 1)} | ${e ? '**' + e + '**' : '0'} | ${f(Math.max(other(a), other(b)), 0)} |`);
    }
    p();

    p('## Start-up and idle memory');
    p();
    const st = data.startup.turso_mcp, sp = data.startup.node_peer;
    p('Start-up: from fork/exec until the first `GET /healthz` answers 200 (polled every 0.25 ms on a port chosen beforehand).');
    p('The first turso-mcp start creates the master key; the median is over the other starts. VmRSS is read 0.5 s after /healthz.');
    p();
    p('| | turso-mcp | Node peer |');
    p('| --- | ---: | ---: |');
    p(`| start → /healthz, first start, ms | ${f(st.runs_ms[0], 1)} | ${f(sp.runs_ms[0], 1)} |`);
    p(`| start → /healthz, median of the other starts, ms | ${f(median(st.runs_ms.slice(1)), 1)} (${st.runs_ms.slice(1).map((x) => f(x, 1)).join(', ')}) | ${f(median(sp.runs_ms.slice(1)), 1)} (${sp.runs_ms.slice(1).map((x) => f(x, 1)).join(', ')}) |`);
    p(`| idle VmRSS after start, MiB | ${mib(median(st.rss_kb))} | ${mib(median(sp.rss_kb))} |`);
    p(`| idle VmRSS of the benchmarked instance before any load, MiB | ${mib(m.idle_rss_kb)} | |`);
    const peak = (t) => Math.max(...cells.filter((x) => x.target === t && x.procs.server).map((x) => x.procs.server.hwm_kb));
    p(`| peak VmHWM over all cells, MiB | ${mib(peak('turso_query'))} | ${mib(peak('node_peer'))} |`);
    p();

    const errs = cells.filter((x) => x.errors > 0);
    p('## Errors');
    p();
    if (!errs.length) p('No errors in any cell.');
    else {
        p('First error seen in each cell that had errors:');
        p();
        for (const x of errs)
            p(`- ${TARGET[x.target]}, ${QUERY[x.query]}, c=${x.conns}: ${errCell(x)} — \`${x.first_error.slice(0, 300).replace(/`/g, "'")}\``);
    }
    if (data.server_warnings && data.server_warnings.trim()) {
        p();
        p('turso-mcp logged (level warn; count, then the line without its timestamp):');
        p();
        p('```');
        p(data.server_warnings.trim());
        p('```');
    }
    if (data.peer_warnings && data.peer_warnings.trim()) {
        p();
        p('The Node peer logged (stderr; count, then the line):');
        p();
        p('```');
        p(data.peer_warnings.trim());
        p('```');
    }
    p();
    p('## Notes');
    p();
    p('- The upstream `tursodb --sync-server` is serial, closes every connection after one answer, and sleeps about 10 ms in');
    p('  its accept loop when no connection is waiting. A lone client (c=1) therefore waits ~10 ms per call whatever is in');
    p('  front of it, and a server whose upstream requests arrive in bursts (each burst finds tursodb asleep) gets about');
    p('  concurrency ÷ (10 ms + service time) calls a second. Direct cells are also noisy for this reason.');
    p('- Every upstream call is a new TCP connection (tursodb closes it), for turso-mcp and the Node peer alike; loopback');
    p('  TCP work done in softirq context is charged to whichever process is running, so CPU per call is approximate.');
    p('- "CPU/call vs direct" compares turso-mcp\'s CPU per call with tursodb\'s own CPU per call for the same answer.');
    p();
    p('Raw numbers: bench/results/latest.json.');
} else if (mode === 'sse') {
    const m = data.meta;
    header(m, 'turso-mcp benchmark: open SSE streams');
    const s = data.sse;
    const row = (x) => `${n0(x.rps)} req/s, p50 ${f(x.p50_ms, 2)} ms, p99 ${f(x.p99_ms, 2)} ms, errors ${errCell(x)}, server CPU ${n0(x.procs.server.cpu_us_per_req)} µs/call, peak RSS ${mib(x.procs.server.hwm_kb)} MiB, other load ${f(other(x), 0)} %`;
    if (!s.supported) {
        p(`**Open SSE streams: not supported by this build** — \`GET /u/<token>/mcp\` with \`Accept: text/event-stream\` and a session answered ${s.get_status}.`);
        p();
        p(`Baseline (64 clients, tools/call point SELECT, no stream open): ${row(s.baseline)}.`);
    } else {
        const h = s.holder || {};
        const held = h.held ?? s.ready.held;
        p('| | value |');
        p('| --- | ---: |');
        p(`| streams requested | ${n0(s.requested)} |`);
        p(`| streams open (200 text/event-stream) | ${n0(held)} |`);
        p(`| failed to open | ${n0(h.failed ?? s.ready.failed)} |`);
        p(`| time to open them all (initialize + initialized + GET each, 128 at a time), ms | ${n0(s.ready.setup_ms)} |`);
        p(`| closed by the server while held | ${n0(h.closed_by_server)} |`);
        p(`| VmRSS before, MiB | ${mib(s.rss_before_kb)} |`);
        p(`| VmRSS with the streams open, MiB | ${mib(s.rss_held_kb)} |`);
        p(`| per open stream (and its session), KiB | ${held > 0 ? f((s.rss_held_kb - s.rss_before_kb) / held, 2) : '–'} |`);
        p(`| peak VmHWM while 64 clients call tools/call, MiB | ${mib(s.load.procs.server.hwm_kb)} |`);
        p(`| VmRSS 1 s after all streams were closed, MiB | ${mib(s.rss_after_close_kb)} |`);
        p(`| time to close them all (client side), ms | ${f(h.close_ms, 1)} |`);
        p(`| /healthz after closing | ${s.healthz_after} |`);
        const k = s.control;
        if (k && k.ready) {
            p(`| control, fresh instance: ${n0(k.ready.held)} idle keep-alive connections after one GET /healthz each (no session, no stream): VmRSS before → open → 1 s after closing, MiB | ${mib(k.rss_before_kb)} → ${mib(k.rss_held_kb)} → ${mib(k.rss_after_close_kb)} |`);
            p(`| control: per idle connection, KiB | ${k.ready.held > 0 ? f((k.rss_held_kb - k.rss_before_kb) / k.ready.held, 2) : '–'} |`);
        }
        p();
        p(`- 64 clients, tools/call point SELECT, no stream open: ${row(s.baseline)}`);
        p(`- the same with ${n0(held)} streams open: ${row(s.load)}`);
        if (h.first_error) p(`- first error while opening: \`${h.first_error}\``);
        if (s.server_log && s.server_log.trim()) {
            p();
            p('turso-mcp logged during this step (level warn; count, then the line without its timestamp):');
            p();
            p('```');
            p(s.server_log.trimEnd());
            p('```');
        }
    }
}
process.stdout.write(out.join('\n') + '\n');
