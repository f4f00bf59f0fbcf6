// The Node.js peer of the benchmark: a typical MCP server written the way the
// official TypeScript SDK's examples write one (McpServer + createMcpExpressApp
// + StreamableHTTPServerTransport, one transport per session, JSON responses as
// in the SDK's jsonResponseStreamableHttp example) with @libsql/client as its
// Turso client. It offers one tool, turso_query, doing what turso-mcp's tool
// does: one statement with positional args, typed columns and rows back as
// structuredContent plus the same JSON as text, capped at MAX_ROWS rows.
//
//   node server.mjs --port 0 --db-url http://127.0.0.1:TPORT
//
// prints "node-peer listening on http://127.0.0.1:PORT". Listens on 127.0.0.1 only.
import { randomUUID } from 'node:crypto';
import { createClient } from '@libsql/client';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { createMcpExpressApp } from '@modelcontextprotocol/sdk/server/express.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import * as z from 'zod/v4';

function arg(name, fallback) {
    const i = process.argv.indexOf(name);
    return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const PORT = Number(arg('--port', '0'));
const DB_URL = arg('--db-url', 'http://127.0.0.1:8080');
const MAX_ROWS = Number(arg('--max-rows', '5000'));

// BENCH-ONLY ADAPTATION. @libsql/client always ends a statement's pipeline
// with a {"type":"close"} request, and the local `tursodb --sync-server`
// rejects the whole body (500 "unknown variant `close`"). This fetch wrapper
// strips that trailing close from the request body and appends the result a
// real Turso server would have sent for it, {"type":"ok","response":{"type":"close"}},
// to the answer. Against a real Turso database it is not needed; everything
// else below is the stock SDK + @libsql/client path.
async function closeStrippingFetch(request) {
    if (request.method !== 'POST' || !new URL(request.url).pathname.endsWith('/pipeline'))
        return fetch(request);
    const body = JSON.parse(await request.text());
    const hadClose = body.requests.length > 0 && body.requests[body.requests.length - 1].type === 'close';
    if (hadClose)
        body.requests.pop();
    const resp = await fetch(request.url, {
        method: 'POST',
        headers: request.headers,
        body: JSON.stringify(body),
    });
    if (!hadClose || !resp.ok)
        return resp;
    const answer = await resp.json();
    answer.results.push({ type: 'ok', response: { type: 'close' } });
    return new Response(JSON.stringify(answer), {
        status: resp.status,
        headers: { 'content-type': 'application/json' },
    });
}

const db = createClient({ url: DB_URL, fetch: closeStrippingFetch });

function cell(v) {
    if (v instanceof ArrayBuffer) return { type: 'blob', base64: Buffer.from(v).toString('base64') };
    if (typeof v === 'bigint') return { type: 'integer', value: v.toString() };
    if (typeof v === 'number' && !Number.isInteger(v)) return { type: 'float', value: v };
    return v;
}

const getServer = () => {
    const server = new McpServer({ name: 'node-peer-turso', version: '1.0.0' });
    server.registerTool(
        'turso_query',
        {
            title: 'Run a SQL query on Turso',
            description: 'Run exactly one SQL statement (SQLite dialect) on the Turso database and get its columns and rows back.',
            inputSchema: {
                sql: z.string().describe('Exactly one SQL statement'),
                args: z.array(z.any()).optional().describe('Values for the ? placeholders'),
            },
            outputSchema: {
                columns: z.array(z.object({ name: z.string().nullable(), type: z.string().nullable() })),
                rows: z.array(z.array(z.any())),
                row_count: z.number().int(),
                truncated: z.boolean(),
            },
        },
        async ({ sql, args }) => {
            try {
                const rs = await db.execute({ sql, args: args ?? [] });
                const rows = rs.rows.slice(0, MAX_ROWS).map((r) => Array.from(r, cell));
                const structured = {
                    columns: rs.columns.map((name, i) => ({ name, type: rs.columnTypes[i] || null })),
                    rows,
                    row_count: rows.length,
                    truncated: rs.rows.length > rows.length,
                };
                return {
                    content: [{ type: 'text', text: `Returned ${rows.length} rows.\n${JSON.stringify(structured)}` }],
                    structuredContent: structured,
                };
            } catch (e) {
                return { content: [{ type: 'text', text: `The statement failed: ${e.message}` }], isError: true };
            }
        },
    );
    return server;
};

const app = createMcpExpressApp({ host: '127.0.0.1' });
const transports = new Map();

app.get('/healthz', (req, res) => res.type('text/plain').send('ok\n'));

app.post('/mcp', async (req, res) => {
    try {
        const sessionId = req.headers['mcp-session-id'];
        let transport = sessionId ? transports.get(sessionId) : undefined;
        if (!transport) {
            if (sessionId) {
                res.status(404).json({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null });
                return;
            }
            if (!isInitializeRequest(req.body)) {
                res.status(400).json({ jsonrpc: '2.0', error: { code: -32000, message: 'Bad Request: No valid session ID provided' }, id: null });
                return;
            }
            transport = new StreamableHTTPServerTransport({
                sessionIdGenerator: () => randomUUID(),
                enableJsonResponse: true,
                onsessioninitialized: (sid) => transports.set(sid, transport),
            });
            transport.onclose = () => {
                if (transport.sessionId) transports.delete(transport.sessionId);
            };
            await getServer().connect(transport);
        }
        await transport.handleRequest(req, res, req.body);
    } catch (error) {
        console.error('Error handling MCP request:', error);
        if (!res.headersSent)
            res.status(500).json({ jsonrpc: '2.0', error: { code: -32603, message: 'Internal server error' }, id: null });
    }
});

// As in the SDK examples: no server-initiated stream.
app.get('/mcp', (req, res) => res.status(405).set('Allow', 'POST').send('Method Not Allowed'));

const httpServer = app.listen(PORT, '127.0.0.1', (error) => {
    if (error) {
        console.error('Failed to start server:', error);
        process.exit(1);
    }
    console.log(`node-peer listening on http://127.0.0.1:${httpServer.address().port}`);
});

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
