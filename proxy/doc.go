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
// estimated from its body, is forwarded to the service's upstream base URL
// with the caller's own credentials, and is reported back with the
// provider's status, headers and real usage, read from the JSON body or from
// the final events of a server-sent event stream as it passes through.
//
// A 429 from upstream puts the service into the limiter's cooldown; the proxy
// holds the caller's request and tries again after it, until a total wait
// (Config.MaxWait) is spent, and only then answers the caller 429.
package proxy
