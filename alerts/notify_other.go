//go:build !darwin

package alerts

// SystemNotifier is the platform's notifier: org.freedesktop.Notifications
// on the session bus.
func SystemNotifier() Notifier { return &DBusNotifier{} }
