// Package proxy is a local HTTP reverse proxy that puts quotabar in front of
// agents that cannot be changed but accept a base URL (Claude Code, Codex,
// the OpenAI and Anthropic SDKs).
//
// A request to
//
//	http://127.0.0.1:PORT/t/<token>/<agent>/<service>/<upstream path>
//
// (the agent may carry a priority for all its calls as <agent>~high,
// ~normal or ~low; the X-Quotabar-Priority header sets one call's) is
// checked against the secret token (so that no other local user can spend
// this user's budget), acquires a lease from the limiter with a cost
// estimated from its body by the service's reservation rule (rules.go), is
// forwarded to the service's upstream base URL with the caller's own
// credentials, and is reported back with the provider's status and headers
// (applied as they arrive) and real usage, read from the JSON body or from
// the final events of a server-sent event stream as it passes through. The
// lease is renewed while the answer streams. Calls that cannot cost quota
// (Free) pass without a lease.
//
// A 429 from upstream puts the service into the limiter's cooldown and is
// refunded; the proxy holds the caller's request and tries again after it,
// and holds it while the service is paused, until a total wait
// (Config.MaxWait) is spent, and only then answers the caller 429.
//
// A Responses API WebSocket (websocket.go) is metered per call: each
// response.create on it is acquired and reported like an HTTP call.
//
// Files: proxy.go the HTTP path and the acquire loop; rules.go reservation
// rules and the free-call rule; body.go the bounded, timed body read;
// websocket.go the metered WebSocket; server.go the listener's connection
// limits and the JSON 431; usage.go reading usage; estimate.go reading
// request bodies; token.go the secret.
package proxy
