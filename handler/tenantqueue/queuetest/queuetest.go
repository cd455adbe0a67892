// Package queuetest runs Azurite's queue service for tests and speaks the Storage queue REST API to
// it with Shared Key authorization, enough to play the Functions host's part around a queue trigger:
// create queues, put, receive (with the real DequeueCount), release, delete and peek messages.
//
// azurite-queue is looked up in $AZURITE_QUEUE_BIN, beside the azurite-blob that azuritetest finds
// (.ci/node_modules/.bin, installed by `make test` and .ci/run), then on PATH. Without it the test
// skips, or fails under CAGUARD_REQUIRE_AZURITE=1, as the blob tests do.
package queuetest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/caguard/caguard/handler/blobstate/azuritetest"
)

// Find returns the azurite-queue executable, or an error saying why there is none.
func Find() (string, error) {
	if p := os.Getenv("AZURITE_QUEUE_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("AZURITE_QUEUE_BIN=%s: %w", p, err)
		}
		return p, nil
	}
	blob, err := azuritetest.Find()
	if err == nil {
		p := filepath.Join(filepath.Dir(blob), "azurite-queue")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err2 := exec.LookPath("azurite-queue"); err2 == nil {
		return p, nil
	}
	if err != nil {
		return "", err
	}
	return "", errors.New("azurite-queue not found beside azurite-blob, in $AZURITE_QUEUE_BIN or on PATH: run `npm ci --prefix .ci`")
}

// Azurite is one running queue service: azuritetest's process handling, with a queue client.
type Azurite struct {
	*azuritetest.Azurite
}

// Start runs azurite-queue for the test and stops it in the test's cleanup. Without Azurite it skips
// the test, saying why (or fails it under CAGUARD_REQUIRE_AZURITE=1).
func Start(t azuritetest.TB) *Azurite {
	t.Helper()
	bin, err := Find()
	if err != nil {
		azuritetest.Unavailable(t, err)
	}
	a, err := azuritetest.LaunchService(bin, t.TempDir(), "queue")
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(a.Stop)
	return &Azurite{a}
}

// Client returns a client of this service with the emulator's well-known account key.
func (a *Azurite) Client() *Client {
	return &Client{Endpoint: a.Endpoint(), Account: azuritetest.Account, Key: azuritetest.Key, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// Client speaks the Storage queue REST API with Shared Key authorization.
type Client struct {
	Endpoint string // https://<account>.queue.core.windows.net or Azurite's path-style URL
	Account  string
	Key      string // base64
	HTTP     *http.Client
}

// Message is one received (or peeked) message. Text is the content with the queue extension's base64
// messageEncoding undone.
type Message struct {
	ID              string
	PopReceipt      string
	DequeueCount    int
	InsertionTime   time.Time
	ExpirationTime  time.Time
	NextVisibleTime time.Time
	Text            string
}

type wireList struct {
	Messages []struct {
		MessageID       string `xml:"MessageId"`
		InsertionTime   string `xml:"InsertionTime"`
		ExpirationTime  string `xml:"ExpirationTime"`
		PopReceipt      string `xml:"PopReceipt"`
		TimeNextVisible string `xml:"TimeNextVisible"`
		DequeueCount    int    `xml:"DequeueCount"`
		MessageText     string `xml:"MessageText"`
	} `xml:"QueueMessage"`
}

// CreateQueue creates queue; one that exists already is fine.
func (c *Client) CreateQueue(ctx context.Context, queue string) error {
	_, err := c.do(ctx, http.MethodPut, queue, nil, nil)
	return err
}

// Put adds a message whose content is text, base64-encoded as the queue extension writes it
// (messageEncoding base64).
func (c *Client) Put(ctx context.Context, queue, text string) error {
	body, err := messageBody(text)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, http.MethodPost, queue+"/messages", nil, body)
	return err
}

// Receive takes the next visible message and hides it for visibility; nil when there is none.
func (c *Client) Receive(ctx context.Context, queue string, visibility time.Duration) (*Message, error) {
	ms, err := c.list(ctx, queue, url.Values{"numofmessages": {"1"}, "visibilitytimeout": {strconv.Itoa(int(visibility / time.Second))}})
	if err != nil || len(ms) == 0 {
		return nil, err
	}
	return &ms[0], nil
}

// Peek returns up to 32 visible messages without hiding them.
func (c *Client) Peek(ctx context.Context, queue string) ([]Message, error) {
	return c.list(ctx, queue, url.Values{"numofmessages": {"32"}, "peekonly": {"true"}})
}

// Delete removes a received message.
func (c *Client) Delete(ctx context.Context, queue string, m *Message) error {
	_, err := c.do(ctx, http.MethodDelete, queue+"/messages/"+m.ID, url.Values{"popreceipt": {m.PopReceipt}}, nil)
	return err
}

// Release makes a received message visible again after the given time, as the queue extension does
// with visibilityTimeout when an invocation fails; its content is unchanged.
func (c *Client) Release(ctx context.Context, queue string, m *Message, after time.Duration) error {
	body, err := messageBody(m.Text)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, http.MethodPut, queue+"/messages/"+m.ID,
		url.Values{"popreceipt": {m.PopReceipt}, "visibilitytimeout": {strconv.Itoa(int(after / time.Second))}}, body)
	return err
}

func messageBody(text string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("<QueueMessage><MessageText>")
	if err := xml.EscapeText(&b, []byte(base64.StdEncoding.EncodeToString([]byte(text)))); err != nil {
		return nil, err
	}
	b.WriteString("</MessageText></QueueMessage>")
	return b.Bytes(), nil
}

func (c *Client) list(ctx context.Context, queue string, q url.Values) ([]Message, error) {
	raw, err := c.do(ctx, http.MethodGet, queue+"/messages", q, nil)
	if err != nil {
		return nil, err
	}
	var l wireList
	if err := xml.Unmarshal(raw, &l); err != nil {
		return nil, fmt.Errorf("queue %s: list: %w", queue, err)
	}
	out := make([]Message, 0, len(l.Messages))
	for _, w := range l.Messages {
		text, err := base64.StdEncoding.DecodeString(w.MessageText)
		if err != nil {
			// The queue extension would fail such a message; show it as it is.
			text = []byte(w.MessageText)
		}
		out = append(out, Message{ID: w.MessageID, PopReceipt: w.PopReceipt, DequeueCount: w.DequeueCount,
			InsertionTime: httpTime(w.InsertionTime), ExpirationTime: httpTime(w.ExpirationTime), NextVisibleTime: httpTime(w.TimeNextVisible),
			Text: string(text)})
	}
	return out, nil
}

func httpTime(s string) time.Time {
	t, _ := http.ParseTime(s)
	return t.UTC()
}

// do sends one signed request; path is relative to the account ("" for the service).
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body []byte) ([]byte, error) {
	u := c.Endpoint + "/" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	req.Header.Set("x-ms-date", time.Now().UTC().Format(http.TimeFormat))
	req.Header.Set("x-ms-version", "2023-11-03")
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/xml")
	}
	if err := c.sign(req); err != nil {
		return nil, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(raw))
	}
	return raw, nil
}

// sign adds the Shared Key Authorization header ("Authorize with Shared Key", version 2009-09-19
// and later: the string to sign has the standard headers, then the x-ms- headers, then the resource).
func (c *Client) sign(req *http.Request) error {
	key, err := base64.StdEncoding.DecodeString(c.Key)
	if err != nil {
		return fmt.Errorf("account key: %w", err)
	}
	length := ""
	if req.ContentLength > 0 {
		length = strconv.FormatInt(req.ContentLength, 10)
	}
	h := req.Header
	var xms []string
	for k := range h {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "x-ms-") {
			xms = append(xms, lk)
		}
	}
	sort.Strings(xms)
	var canon strings.Builder
	for _, k := range xms {
		canon.WriteString(k + ":" + strings.TrimSpace(h.Get(k)) + "\n")
	}
	resource := "/" + c.Account + req.URL.EscapedPath()
	q := req.URL.Query()
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		vs := append([]string(nil), q[k]...)
		sort.Strings(vs)
		resource += "\n" + strings.ToLower(k) + ":" + strings.Join(vs, ",")
	}
	toSign := strings.Join([]string{req.Method, h.Get("Content-Encoding"), h.Get("Content-Language"), length, h.Get("Content-MD5"),
		h.Get("Content-Type"), "", h.Get("If-Modified-Since"), h.Get("If-Match"), h.Get("If-None-Match"), h.Get("If-Unmodified-Since"),
		h.Get("Range")}, "\n") + "\n" + canon.String() + resource
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(toSign))
	req.Header.Set("Authorization", "SharedKey "+c.Account+":"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return nil
}
