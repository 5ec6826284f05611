package sourcelimit_test

import (
	"net"
	"testing"
	"time"

	"github.com/ozsecrets/oz/gateway/edge/sourcelimit"
)

func TestKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"192.0.2.7:443", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:443", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:1", "2001:db8:1:2::/64"},
		{"not-an-address", "not-an-address"},
	}
	for _, tt := range tests {
		if got := sourcelimit.Key(tt.in); got != tt.want {
			t.Errorf("Key(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFailures(t *testing.T) {
	f := sourcelimit.NewFailures(60, 3) // one a second after three
	now := time.Unix(1000, 0)
	for i := range 3 {
		if ok, _ := f.Take("a", now); !ok {
			t.Fatalf("failure %d of the burst refused", i+1)
		}
	}
	ok, wait := f.Take("a", now)
	if ok || wait != time.Second {
		t.Fatalf("fourth failure: got ok=%v wait=%v, want refused for 1s", ok, wait)
	}
	if ok, _ := f.Take("b", now); !ok {
		t.Errorf("another source refused")
	}
	f.Refund("a", now)
	if ok, _ := f.Take("a", now); !ok {
		t.Errorf("a refunded failure is not available again")
	}
	if ok, _ := f.Take("a", now.Add(time.Second)); !ok {
		t.Errorf("no failure allowed a second later")
	}
	f.Charge("a", now.Add(time.Second))
	if ok, _ := f.Take("a", now.Add(time.Second)); ok {
		t.Errorf("a charge below zero was allowed")
	}
}

func TestListen(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := make(chan string, 10)
	l := sourcelimit.Listen(inner, 2, func(s string) { refused <- s })
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	dial()
	first, second := <-accepted, <-accepted
	dial()
	if got := <-refused; got != "127.0.0.1" {
		t.Errorf("refused source: got %q, want 127.0.0.1", got)
	}
	first.Close()
	first.Close() // a second Close must not free a second slot
	dial()
	<-accepted
	dial()
	<-refused
	second.Close()
}
