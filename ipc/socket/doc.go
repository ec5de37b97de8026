// Package socket is how quotabar's daemon and its clients meet: the socket's
// path (API.md, Transport), a listener that admits only this user and root,
// and a dialer that talks only to a daemon of this user.
//
// Both ends check each other, because either can be impersonated by another
// local user: the listener reads the peer's uid from the kernel on every
// connection and answers 403 before reading a byte of a foreign request; the
// dialer refuses a socket directory that is not this user's or that others
// may enter (mode 0700 is required), and a daemon whose peer uid is not this
// user's, naming what it found and what to do.
package socket
