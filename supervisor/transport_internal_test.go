package supervisor

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestConnTrackerClosesIdleConnections leaves a connection idle in the
// transport's pool, as a cancelled request can, and checks that CloseAll
// closes it (the server sees EOF) and that later dials fail.
func TestConnTrackerClosesIdleConnections(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	serverSideClosed := make(chan struct{}, 10)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			serverSideClosed <- struct{}{}
		}
	}
	srv.Start()
	defer srv.Close()
	tr, conns := newTransport(nil)
	resp, err := (&http.Client{Transport: tr}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close() // the connection goes back to the pool, idle
	if n := conns.open(); n != 1 {
		t.Fatalf("%d connections open, want the idle one", n)
	}
	conns.CloseAll()
	<-serverSideClosed // the server saw the idle connection close
	if n := conns.open(); n != 0 {
		t.Errorf("%d connections open after CloseAll", n)
	}
	if _, err := (&http.Client{Transport: tr}).Get(srv.URL); !errors.Is(err, errConnsClosed) {
		t.Errorf("a request after CloseAll: %v, want errConnsClosed", err)
	}
}
