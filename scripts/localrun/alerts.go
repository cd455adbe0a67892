package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
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

// showAlerts prints each alert's text, as a chat client shows it, and writes the last alert as the
// Teams card and the Slack message caguard would post with ALERT_WEBHOOK_FORMAT teams or slack.
func showAlerts(bodies [][]byte, dir string) error {
	if len(bodies) == 0 {
		fmt.Println("no alert was raised")
		return nil
	}
	var last reconcile.Alert
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
		last = body.Alert
	}
	for _, out := range []struct {
		format alert.Format
		file   string
		what   string
	}{
		{alert.FormatTeams, "alert-teams-card.json", "Teams Workflows card (paste its content into adaptivecards.io/designer)"},
		{alert.FormatSlack, "alert-slack.json", "Slack Block Kit message"},
	} {
		b, err := alert.Encode(out.format, last)
		if err != nil {
			return err
		}
		path := filepath.Join(dir, out.file)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		fmt.Printf("\n%s: %s", out.what, path)
	}
	fmt.Println()
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
