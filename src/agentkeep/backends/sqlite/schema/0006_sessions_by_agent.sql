-- An agent's sessions by status: "does this agent still have a running session?" (asked
-- each time one of its sessions ends, lifecycle.agent_settled) and the agent status
-- readers derive from the idle rule are index lookups, not a walk over every running
-- session (which made ending N idle sessions take N x N steps).
CREATE INDEX sessions_agent ON sessions (agent_id, status) WHERE agent_id IS NOT NULL;
