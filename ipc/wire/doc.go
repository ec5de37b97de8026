// Package wire holds the bodies of quotabar's socket API (docs/API.md),
// field for field, with its error codes and refusal reasons as typed
// constants. It depends on the standard library only, so that the client
// agents import, the daemon's server and other tools share one definition of
// the contract without pulling in each other.
package wire
