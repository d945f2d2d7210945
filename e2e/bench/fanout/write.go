package fanout

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/v2"
)

// Writers is how many concurrent writers Write uses.
const Writers = 32

// Write sets n values, SeqMarker followed by the write's number, at rate
// writes per second (the i-th is due at i/rate after the start), cycling
// through keys. It returns each write's acknowledgement time (zero if the
// Set failed) and the rate achieved.
func Write(ctx context.Context, api client.KeysAPI, keys []string, n, rate int) ([]time.Time, float64) {
	acks := make([]time.Time, n)
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range Writers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
					time.Sleep(d)
				}
				if _, err := api.Set(ctx, keys[i%len(keys)], SeqMarker+strconv.Itoa(i), nil); err == nil {
					acks[i] = time.Now()
				}
			}
		})
	}
	wg.Wait()
	return acks, float64(n) / time.Since(start).Seconds()
}

// EtcdMetrics reads the named metrics (without labels) from etcd's
// /metrics at endpoint; a metric etcd does not export is left out.
func EtcdMetrics(ctx context.Context, endpoint string, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(endpoint, "/")+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fanout: etcd /metrics: %s", resp.Status)
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	got := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || !want[name] {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
			got[name] = v
		}
	}
	return got, sc.Err()
}

// Quantile returns the q-quantile of sorted (0 if empty).
func Quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}
