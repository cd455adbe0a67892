package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/caguard/caguard/handler/alert"
	"github.com/caguard/caguard/handler/azfunc/hosttest"
	"github.com/caguard/caguard/handler/reconcile"
)

// webhook is a local alert receiver on 127.0.0.1 that keeps every body it is posted.
type webhook struct {
	url  string
	srv  *http.Server
	mu   sync.Mutex
	got  [][]byte
	done chan struct{}
}

func startWebhook() (*webhook, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("webhook receiver: %w", err)
	}
	w := &webhook{url: "http://" + ln.Addr().String() + "/alerts", done: make(chan struct{})}
	w.srv = &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			if err != nil {
				http.Error(rw, "read", http.StatusBadRequest)
				return
			}
			w.mu.Lock()
			w.got = append(w.got, b)
			w.mu.Unlock()
			rw.WriteHeader(http.StatusAccepted)
		}),
	}
	go func() {
		defer close(w.done)
		_ = w.srv.Serve(ln)
	}()
	return w, nil
}

func (w *webhook) bodies() [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([][]byte(nil), w.got...)
}

func (w *webhook) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = w.srv.Shutdown(ctx)
	<-w.done
}

// showAlerts prints each alert's text, as a chat client shows it, and writes every alert as the Teams
// card and the Slack message caguard would post with ALERT_WEBHOOK_FORMAT teams or slack, named by order
// and trigger: alert-01-audit-event-teams.json, alert-01-audit-event-slack.json, alert-02-…
func showAlerts(bodies [][]byte, dir string) error {
	if len(bodies) == 0 {
		fmt.Println("no alert was raised")
		return nil
	}
	var written []string
	for i, b := range bodies {
		var body struct {
			Text  string          `json:"text"`
			Alert reconcile.Alert `json:"alert"`
		}
		if err := json.Unmarshal(b, &body); err != nil {
			return fmt.Errorf("alert %d: %w", i+1, err)
		}
		if i > 0 {
			fmt.Println("\n--")
		}
		fmt.Println(body.Text)
		for _, out := range []struct {
			format alert.Format
			suffix string
		}{{alert.FormatTeams, "teams"}, {alert.FormatSlack, "slack"}} {
			enc, err := alert.Encode(out.format, body.Alert)
			if err != nil {
				return err
			}
			path := filepath.Join(dir, alertFileName(i+1, body.Alert.Trigger, out.suffix))
			if err := os.WriteFile(path, enc, 0o644); err != nil {
				return fmt.Errorf("write %s: %w", path, err)
			}
			written = append(written, path)
		}
	}
	fmt.Printf("\n%d alert(s), each as a Teams Workflows card (paste its attachments[0].content into adaptivecards.io/designer) and a Slack Block Kit message:\n", len(bodies))
	for _, p := range written {
		fmt.Println("  " + p)
	}
	return nil
}

// alertFileName names the file of the n-th alert in one format. The trigger comes from the handler's
// JSON; anything but a plain word is replaced, so it cannot name a path elsewhere.
func alertFileName(n int, trigger reconcile.Trigger, format string) string {
	t := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, strings.ToLower(string(trigger)))
	if t == "" {
		t = "unknown"
	}
	return fmt.Sprintf("alert-%02d-%s-%s.json", n, t, format)
}

// clearOutputs removes what an earlier demo run wrote to dir (its alert files and report), so that
// the files there are this run's; dir is created when missing. Nothing else in dir is touched.
func clearOutputs(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, err := filepath.Glob(filepath.Join(dir, "alert-*.json"))
	if err != nil {
		return err
	}
	for _, f := range append(old, filepath.Join(dir, "report.html")) {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// writeReport asks Evaluate for the HTML report, as a browser does, and writes it to dir.
func writeReport(h *hosttest.Host, dir string) error {
	data := hosttest.HTTPData("req", "GET", "")
	req := data["req"].(map[string]any)
	req["Headers"].(map[string][]string)["Accept"] = []string{"text/html"}
	req["Query"].(map[string]string)["format"] = "html"
	a, err := h.Invoke("Evaluate", data, hosttest.SysMetadata("Evaluate"))
	if err != nil {
		return err
	}
	res, err := a.HTTP("res")
	if err != nil {
		return fmt.Errorf("evaluate: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("evaluate (html): HTTP %d: %.200s", res.StatusCode, res.Body)
	}
	path := filepath.Join(dir, "report.html")
	if err := os.WriteFile(path, []byte(res.Body), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	fmt.Printf("HTTP %d, %s; open it in a browser: %s\n", res.StatusCode, res.Headers["Content-Type"], path)
	return nil
}
