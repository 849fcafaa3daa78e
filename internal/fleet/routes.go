package fleet

import "net/http"

// AgentHandlerFunc answers one agent call made over the agent's tunnel session. hostID is
// the caller's, from its certificate: the only identity an agent has. It returns its error
// for httpapi.Handle to answer as {"code","message"}.
type AgentHandlerFunc func(w http.ResponseWriter, r *http.Request, hostID string) error

type agentRoute struct {
	pattern string
	h       AgentHandlerFunc
}

// HandleAgent adds a route to what agents may call on pmd over their sessions (pattern as
// http.ServeMux takes it, "POST /v1/usage"), beside the fleet's own heartbeat, events and
// renew. Call it before Serve, from one goroutine: sessions opened earlier do not see it. A
// pattern that is invalid or clashes with another route panics here, as ServeMux.Handle does,
// rather than in a session.
func (f *Fleet) HandleAgent(pattern string, h AgentHandlerFunc) {
	f.routes = append(f.routes, agentRoute{pattern: pattern, h: h})
	f.agentAPI(&conn{}, f.log) // the mux every session builds: panics now on a bad pattern
}
