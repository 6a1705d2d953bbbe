// natsload drives NATS JetStream for the Queuey bench, which wrk cannot do:
// JetStream speaks the NATS protocol, not HTTP.
//
// It mirrors wrk as the bench runs it: -connections client connections, each
// with one request in flight at a time, for -duration, then one line
//
//	WRK-JSON {"requests":...,"duration_us":...,"p50_us":...,...}
//
// with the fields of bench/lua/report.lua, so bench/wrk.py reads it as it
// reads wrk's. Modes:
//
//	setup    create the stream (file storage, direct gets allowed, replacing
//	         one of that name) and publish -fill messages of -size bytes
//	publish  each connection publishes one -size-byte message and waits for
//	         its PubAck (the stream has stored it) before the next: the
//	         equivalent of one POST answered 201
//	read     each connection asks for -batch messages from sequence 1 with one
//	         batched direct get ($JS.API.DIRECT.GET.<stream>, {"seq":1,"batch":N})
//	         and waits for the end-of-batch marker: the equivalent of a GET
//	         with limit N, which reads without consuming
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

type options struct {
	server      string
	mode        string
	stream      string
	subject     string
	connections int
	duration    time.Duration
	size        int
	batch       int
	fill        int
	timeout     time.Duration
}

// counts are one connection's results.
type counts struct {
	latencies []time.Duration
	bytes     int64
	status    int64 // JetStream error replies
	timeouts  int64
	read      int64 // other failures of a request
	messages  int64 // messages received by reads
}

func main() {
	var o options
	flag.StringVar(&o.server, "server", nats.DefaultURL, "NATS URL")
	flag.StringVar(&o.mode, "mode", "publish", "setup, publish or read")
	flag.StringVar(&o.stream, "stream", "BENCH", "stream name")
	flag.StringVar(&o.subject, "subject", "bench.messages", "subject the stream stores")
	flag.IntVar(&o.connections, "connections", 64, "client connections, one request in flight each")
	flag.DurationVar(&o.duration, "duration", 8*time.Second, "how long to send (publish, read)")
	flag.IntVar(&o.size, "size", 140, "message size in bytes")
	flag.IntVar(&o.batch, "batch", 10, "messages per read")
	flag.IntVar(&o.fill, "fill", 1000, "messages published by setup")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Second, "a request unanswered this long is a timeout")
	flag.Parse()
	var err error
	switch o.mode {
	case "setup":
		err = setup(o)
	case "publish", "read":
		err = load(o)
	default:
		err = fmt.Errorf("unknown -mode %q", o.mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "natsload:", err)
		os.Exit(1)
	}
}

func setup(o options) error {
	nc, err := nats.Connect(o.server, nats.Name("natsload-setup"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := js.DeleteStream(ctx, o.stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return err
	}
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        o.stream,
		Subjects:    []string{o.subject},
		Storage:     jetstream.FileStorage,
		Replicas:    1,
		AllowDirect: true,
	})
	if err != nil {
		return err
	}
	body := []byte(strings.Repeat("x", o.size))
	for i := 0; i < o.fill; i++ {
		if _, err := js.Publish(ctx, o.subject, body); err != nil {
			return err
		}
	}
	fmt.Printf("stream %s: %d messages of %d bytes\n", o.stream, o.fill, o.size)
	return nil
}

func load(o options) error {
	conns := make([]*nats.Conn, o.connections)
	for i := range conns {
		nc, err := nats.Connect(o.server, nats.Name(fmt.Sprintf("natsload-%d", i)))
		if err != nil {
			return err
		}
		defer nc.Close()
		conns[i] = nc
	}
	results := make([]counts, o.connections)
	var stop atomic.Bool
	var wg sync.WaitGroup
	began := time.Now()
	for i, nc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if o.mode == "publish" {
				publishLoop(o, nc, &stop, &results[i])
			} else {
				readLoop(o, nc, &stop, &results[i])
			}
		}()
	}
	time.Sleep(o.duration)
	stop.Store(true)
	wg.Wait()
	report(results, time.Since(began))
	return nil
}

func publishLoop(o options, nc *nats.Conn, stop *atomic.Bool, c *counts) {
	js, err := jetstream.New(nc)
	if err != nil {
		c.read++
		return
	}
	body := []byte(strings.Repeat("x", o.size))
	for !stop.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
		start := time.Now()
		_, err := js.Publish(ctx, o.subject, body)
		took := time.Since(start)
		cancel()
		switch {
		case err == nil:
			c.latencies = append(c.latencies, took)
			c.bytes += int64(len(body))
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
			c.timeouts++
		case isAPIError(err):
			c.status++
		default:
			c.read++
		}
	}
}

func isAPIError(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api)
}

func readLoop(o options, nc *nats.Conn, stop *atomic.Bool, c *counts) {
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		c.read++
		return
	}
	defer sub.Unsubscribe()
	request, _ := json.Marshal(map[string]int{"seq": 1, "batch": o.batch})
	subject := "$JS.API.DIRECT.GET." + o.stream
	for !stop.Load() {
		start := time.Now()
		if err := nc.PublishRequest(subject, inbox, request); err != nil {
			c.read++
			continue
		}
		got, bytes, failed := readBatch(sub, o.timeout, c)
		if failed {
			continue
		}
		c.latencies = append(c.latencies, time.Since(start))
		c.messages += got
		c.bytes += bytes
		if got != int64(o.batch) {
			c.status++ // fewer messages than asked for: the stream was not filled
		}
	}
}

// readBatch reads one batched direct get's messages up to its end-of-batch marker.
func readBatch(sub *nats.Subscription, timeout time.Duration, c *counts) (int64, int64, bool) {
	var got, bytes int64
	for {
		msg, err := sub.NextMsg(timeout)
		if errors.Is(err, nats.ErrTimeout) {
			c.timeouts++
			return got, bytes, true
		}
		if err != nil {
			c.read++
			return got, bytes, true
		}
		bytes += int64(len(msg.Data))
		switch status := msg.Header.Get("Status"); status {
		case "":
			got++
		case "204": // end of batch
			return got, bytes, false
		default: // 404 no messages, 408 bad request ...
			c.status++
			return got, bytes, true
		}
	}
}

func report(results []counts, elapsed time.Duration) {
	var all []time.Duration
	var bytes, status, timeouts, read, messages int64
	for _, c := range results {
		all = append(all, c.latencies...)
		bytes += c.bytes
		status += c.status
		timeouts += c.timeouts
		read += c.read
		messages += c.messages
	}
	slices.Sort(all)
	var sum time.Duration
	for _, l := range all {
		sum += l
	}
	mean := 0.0
	if len(all) > 0 {
		mean = float64(sum.Microseconds()) / float64(len(all))
	}
	fields := []string{
		fmt.Sprintf(`"requests":%d`, len(all)),
		fmt.Sprintf(`"duration_us":%d`, elapsed.Microseconds()),
		fmt.Sprintf(`"bytes":%d`, bytes),
		`"connect_errors":0`,
		fmt.Sprintf(`"read_errors":%d`, read),
		`"write_errors":0`,
		fmt.Sprintf(`"status_errors":%d`, status),
		fmt.Sprintf(`"timeouts":%d`, timeouts),
		fmt.Sprintf(`"mean_us":%.1f`, mean),
		fmt.Sprintf(`"max_us":%d`, percentile(all, 100)),
	}
	for _, p := range []float64{50, 90, 99, 99.9} {
		fields = append(fields, fmt.Sprintf(`"p%s_us":%d`, formatPercent(p), percentile(all, p)))
	}
	fields = append(fields, fmt.Sprintf(`"messages":%d`, messages))
	fmt.Printf("WRK-JSON {%s}\n", strings.Join(fields, ","))
}

// percentile is the nearest-rank percentile of sorted latencies, in microseconds.
func percentile(sorted []time.Duration, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank].Microseconds()
}

// formatPercent writes 50 as "50" and 99.9 as "99.9", as report.lua's tostring() does.
func formatPercent(p float64) string {
	if p == math.Trunc(p) {
		return fmt.Sprintf("%d", int(p))
	}
	return fmt.Sprintf("%g", p)
}
