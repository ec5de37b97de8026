// Package ipc is the Go client of quotabar's socket API (docs/API.md), the
// package agents import. It depends only on the wire types (ipc/wire) and
// the socket (ipc/socket), never on the daemon's server or its limiter.
//
// An agent asks before each rate-limited call and reports what happened:
//
//	var c ipc.Client // finds the daemon's socket itself
//	err := c.Do(ctx, wire.AcquireRequest{Agent: "research-1", Service: "openai"},
//		func(ctx context.Context) (ipc.CallResult, error) {
//			resp, err := http.DefaultClient.Do(req.WithContext(ctx))
//			if err != nil {
//				return ipc.CallResult{}, err
//			}
//			defer resp.Body.Close()
//			return ipc.CallResult{Status: resp.StatusCode, Header: resp.Header}, nil
//		})
//	if ipc.IsRefused(err, wire.ReasonPaused) {
//		// the person paused this agent or service
//	}
//
// The client talks only to a daemon of this user: socket.Dial checks the
// socket's directory (this user's, mode 0700) and the serving process's uid
// on every connection, and a refusal is an *socket.UntrustedError that says
// what it found.
package ipc
