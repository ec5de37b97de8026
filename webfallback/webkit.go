package webfallback

import (
	"context"
	"errors"
)

type webkitSession struct{ id string }

func (w *webkitSession) alive() bool { return false }

func (m *Manager) openWebKit(ctx context.Context, s *service, t Target) (Session, error) {
	return Session{}, errors.New("webkit: not yet")
}

func (m *Manager) closeWebKit(ctx context.Context, s *service, w *webkitSession) error { return nil }
