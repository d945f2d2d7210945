package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"
)

// node is one node process started by a spec.
type node struct {
	session *gexec.Session
	httpURL string // http://127.0.0.1:port of its --listen
	etcdURL string // its embedded etcd's client URL; "" with an external etcd
	ports   []int  // every port it was told to listen on
}

// spawnCh runs functions on one OS thread that lives as long as the suite.
// Pdeathsig fires when the thread that forked the child exits, not the
// process (golang/go#27505), so every node is forked from this one.
var spawnCh = func() chan func() {
	ch := make(chan func())
	go func() {
		runtime.LockOSThread() // never unlocked: the thread must outlive every child
		for f := range ch {
			f()
		}
	}()
	return ch
}()

// startProcess starts the node binary with args and env (added to the
// suite's), in a fresh working directory, its output going to
// GinkgoWriter and to the session's buffers. It is killed when the spec
// ends, and by the kernel if the suite dies first.
func startProcess(args []string, env ...string) *gexec.Session {
	GinkgoHelper()
	cmd := exec.Command(nodeBin, args...)
	cmd.Dir = GinkgoT().TempDir() // the default --data-dir lands here, not in the repo
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var session *gexec.Session
	var err error
	done := make(chan struct{})
	spawnCh <- func() {
		defer close(done)
		session, err = gexec.Start(cmd,
			gexec.NewPrefixedWriter("[node out] ", GinkgoWriter),
			gexec.NewPrefixedWriter("[node err] ", GinkgoWriter))
	}
	<-done
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() {
		if CurrentSpecReport().Failed() && session.ExitCode() == -1 {
			// Still running after a failure: get its goroutines into the report.
			session.Signal(syscall.SIGQUIT)
			select {
			case <-session.Exited:
			case <-time.After(5 * time.Second):
			}
		}
		session.Kill().Wait(10 * time.Second)
	})
	return session
}

// freePorts returns n loopback ports that were free a moment ago; all are
// held open together so that no two are the same.
func freePorts(n int) []int {
	GinkgoHelper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// startEmbeddedNode starts a node on its embedded etcd, with free ports and
// a data directory of the spec's, plus extra flags.
func startEmbeddedNode(extra ...string) *node {
	GinkgoHelper()
	ports := freePorts(3) // etcd client, etcd peer, HTTP
	args := append([]string{
		"--embedded-etcd-listen", addr(ports[0]),
		"--embedded-etcd-peer-listen", addr(ports[1]),
		"--listen", addr(ports[2]),
		"--data-dir", filepath.Join(GinkgoT().TempDir(), "etcd"),
	}, extra...)
	return &node{
		session: startProcess(args),
		httpURL: "http://" + addr(ports[2]),
		etcdURL: "http://" + addr(ports[0]),
		ports:   ports,
	}
}

// startExternalNode starts a node on the etcd at endpoints, plus extra flags.
func startExternalNode(endpoints []string, extra ...string) *node {
	GinkgoHelper()
	return startExternalNodeEnv(endpoints, nil, extra...)
}

// startExternalNodeEnv is startExternalNode with environment variables
// ("NAME=value") added.
func startExternalNodeEnv(endpoints, env []string, extra ...string) *node {
	GinkgoHelper()
	ports := freePorts(1)
	args := append([]string{"--etcd-endpoints", strings.Join(endpoints, ","), "--listen", addr(ports[0])}, extra...)
	return &node{session: startProcess(args, env...), httpURL: "http://" + addr(ports[0]), ports: ports}
}

// startLeafNode starts a leaf: a node syncing from the relays, plus extra
// flags.
func startLeafNode(relays []string, extra ...string) *node {
	GinkgoHelper()
	ports := freePorts(1)
	args := append([]string{"--relay-endpoints", strings.Join(relays, ","), "--listen", addr(ports[0])}, extra...)
	return &node{session: startProcess(args), httpURL: "http://" + addr(ports[0]), ports: ports}
}

// line is one JSON line of the node's stdout: an update or a status.
type line struct {
	Type     string  `json:"type,omitempty"`
	Key      string  `json:"key,omitempty"`
	Value    *string `json:"value,omitempty"`
	Revision uint64  `json:"revision,omitempty"`
	Status   string  `json:"status,omitempty"`
	// Typed is there with --model calicov1.
	Typed *struct {
		Kind  string          `json:"kind"`
		Key   json.RawMessage `json:"key"`
		Value json.RawMessage `json:"value"`
	} `json:"typed,omitempty"`
}

// lines returns the complete lines the node has written to stdout so far,
// each checked to be one JSON object of a known shape.
func (n *node) lines(g Gomega) []line {
	out := n.session.Out.Contents()
	out = out[:bytes.LastIndexByte(out, '\n')+1]
	var ls []line
	for _, raw := range bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n")) {
		if len(raw) == 0 {
			continue
		}
		var l line
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		g.Expect(dec.Decode(&l)).To(Succeed(), "stdout line %q", raw)
		g.Expect(l.Status != "" || l.Type != "").To(BeTrue(), "stdout line %q", raw)
		ls = append(ls, l)
	}
	return ls
}

// statuses returns the statuses on stdout so far, in order.
func (n *node) statuses(g Gomega) []string {
	var s []string
	for _, l := range n.lines(g) {
		if l.Status != "" {
			s = append(s, l.Status)
		}
	}
	return s
}

// lastStatus returns the last status on stdout, or "".
func (n *node) lastStatus(g Gomega) string {
	s := n.statuses(g)
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

// updates returns the update lines on stdout for key, in order.
func (n *node) updates(g Gomega, key string) []line {
	var us []line
	for _, l := range n.lines(g) {
		if l.Type != "" && l.Key == key {
			us = append(us, l)
		}
	}
	return us
}

var httpClient = &http.Client{Timeout: 3 * time.Second}

// get GETs url and returns the status code and body.
func get(ctx context.Context, g Gomega, url string) (int, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	g.Expect(err).NotTo(HaveOccurred())
	resp, err := httpClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	return resp.StatusCode, string(body)
}

// statusCode GETs url and returns the status code.
func statusCode(ctx context.Context, g Gomega, url string) int {
	code, _ := get(ctx, g, url)
	return code
}

// state is the body of the node's GET /state.
type state struct {
	Status string            `json:"status"`
	Keys   map[string]string `json:"keys"`
}

// state GETs /state, checking that the body has exactly its two members.
// Its arguments are in the order Eventually injects them.
func (n *node) state(g Gomega, ctx context.Context) state {
	code, body := get(ctx, g, n.httpURL+"/state")
	g.Expect(code).To(Equal(http.StatusOK))
	var s state
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	g.Expect(dec.Decode(&s)).To(Succeed(), "/state body %q", body)
	g.Expect(s.Keys).NotTo(BeNil(), "/state body %q", body)
	return s
}

// metric returns the value of the sample named series (e.g.
// `etcdsync_updates_total{type="new"}`) on the node's /metrics.
func (n *node) metric(ctx context.Context, g Gomega, series string) float64 {
	code, body := get(ctx, g, n.httpURL+"/metrics")
	g.Expect(code).To(Equal(http.StatusOK))
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	g.Expect(m).NotTo(BeNil(), "/metrics has no %s", series)
	v, err := strconv.ParseFloat(m[1], 64)
	g.Expect(err).NotTo(HaveOccurred())
	return v
}

// putKey writes key=value through etcd's v2 HTTP API, as a user's curl would.
func putKey(ctx context.Context, etcdURL, key, value string) {
	GinkgoHelper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, etcdURL+"/v2/keys"+key,
		strings.NewReader(url.Values{"value": {value}}.Encode()))
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := httpClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	Expect(resp.StatusCode).To(BeElementOf(http.StatusOK, http.StatusCreated), "PUT %s", key)
}

// deleteKey deletes key through etcd's v2 HTTP API.
func deleteKey(ctx context.Context, etcdURL, key string) {
	GinkgoHelper()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, etcdURL+"/v2/keys"+key, nil)
	Expect(err).NotTo(HaveOccurred())
	resp, err := httpClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	Expect(resp.StatusCode).To(Equal(http.StatusOK), "DELETE %s", key)
}

// clusterID returns the X-Etcd-Cluster-Id of etcd at etcdURL.
func clusterID(ctx context.Context, etcdURL string) string {
	GinkgoHelper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, etcdURL+"/v2/keys/", nil)
	Expect(err).NotTo(HaveOccurred())
	resp, err := httpClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	return resp.Header.Get("X-Etcd-Cluster-Id")
}

// children returns the pids of pid's child processes.
func children(pid int) []string {
	GinkgoHelper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	Expect(err).NotTo(HaveOccurred())
	var kids []string
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread ended meanwhile
		}
		kids = append(kids, strings.Fields(string(b))...)
	}
	return kids
}

// linesMatching returns the lines of text that match re.
func linesMatching(text string, re *regexp.Regexp) []string {
	var ls []string
	for _, l := range strings.Split(text, "\n") {
		if re.MatchString(l) {
			ls = append(ls, l)
		}
	}
	return ls
}
