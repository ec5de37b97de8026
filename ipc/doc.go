// Package ipc is quotabar's wire API (API.md) over a Unix domain socket: the
// daemon's HTTP server, the socket it listens on, and the Go client that
// agents import.
//
// An agent asks before each rate-limited call and reports what happened:
//
//	var c ipc.Client // finds the daemon's socket itself
//	err := c.Do(ctx, ipc.AcquireRequest{Agent: "research-1", Service: "openai"},
//		func(ctx context.Context) (ipc.CallResult, error) {
//			resp, err := http.DefaultClient.Do(req.WithContext(ctx))
//			if err != nil {
//				return ipc.CallResult{}, err
//			}
//			defer resp.Body.Close()
//			return ipc.CallResult{Status: resp.StatusCode, Header: resp.Header}, nil
//		})
//
// The socket is private to its user: its directory is 0700, the socket 0600,
// and the listener returned by [Listen] checks the peer's uid on every
// connection before a byte of the request is read.
package ipc
