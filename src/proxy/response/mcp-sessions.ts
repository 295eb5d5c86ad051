/**
 * Stage `mcp-sessions`: on MCP routes, learn the session an `initialize` created (bound to the
 * agent that sent it) and forget one that ended (a successful DELETE, or a 404 from the server).
 */
import type { ResponseStage } from './upstream-response';

export const mcpSessions: ResponseStage = {
  name: 'mcp-sessions',
  run(r, ctx, deps) {
    const m = ctx.mcp;
    if (m === null) return;
    const route = ctx.route!.name;
    const ok = r.status >= 200 && r.status < 300;
    if (m.method === 'initialize' && ok) {
      const sid = r.upstream['mcp-session-id'];
      if (typeof sid === 'string' && sid.length > 0) deps.sessions.bind(route, sid, ctx.agent);
    }
    if (ctx.mcpSession !== null && ((m.kind === 'terminate' && ok) || r.status === 404)) deps.sessions.end(route, ctx.mcpSession);
  },
};
