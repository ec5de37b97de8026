package notify

import "testing"

func TestHub(t *testing.T) {
	var h Hub
	h.Notify() // no subscribers: nothing to do, nothing blocks
	a, stopA := h.Subscribe()
	b, stopB := h.Subscribe()
	h.Notify()
	h.Notify() // coalesces with the pending one
	for name, ch := range map[string]<-chan struct{}{"a": a, "b": b} {
		select {
		case <-ch:
		default:
			t.Fatalf("%s was not poked", name)
		}
		select {
		case <-ch:
			t.Fatalf("%s got two values for two pokes made while one was pending", name)
		default:
		}
	}
	stopA()
	h.Notify()
	select {
	case <-a:
		t.Error("a was poked after it stopped")
	default:
	}
	select {
	case <-b:
	default:
		t.Error("b was not poked")
	}
	stopB()
}
