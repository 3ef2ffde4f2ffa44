package fake

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Fault is what a FaultProxy does with a connection. The zero Fault is Pass.
type Fault struct {
	kind faultKind
	d    time.Duration // Delay: before forwarding; SlowDrip: before each byte
	n    int64         // Truncate: response bytes forwarded
	addr string        // Divert: where to forward
}

type faultKind int

const (
	pass faultKind = iota
	reset
	hang
	blackhole
	delay
	truncate
	slowDrip
	divert
)

// The faults that take no parameter.
var (
	// Pass forwards both ways, untouched.
	Pass = Fault{kind: pass}
	// Reset accepts the connection and resets it at once (SO_LINGER 0: the
	// client reads ECONNRESET).
	Reset = Fault{kind: reset}
	// Hang accepts the connection and never reads nor answers.
	Hang = Fault{kind: hang}
	// Blackhole accepts the connection, reads and discards everything, and
	// never answers.
	Blackhole = Fault{kind: blackhole}
)

// Delay waits d after accepting a connection, then forwards it.
func Delay(d time.Duration) Fault { return Fault{kind: delay, d: d} }

// Truncate forwards the request, then only the first n bytes of the answer,
// and closes the connection.
func Truncate(n int64) Fault { return Fault{kind: truncate, n: n} }

// SlowDrip forwards the request, then the answer one byte at a time, waiting
// d before each.
func SlowDrip(d time.Duration) Fault { return Fault{kind: slowDrip, d: d} }

// Divert forwards connections to addr instead of the proxy's target (a plain
// TCP listener in front of a client that expects TLS, say).
func Divert(addr string) Fault { return Fault{kind: divert, addr: addr} }

func (f Fault) String() string {
	switch f.kind {
	case reset:
		return "reset"
	case hang:
		return "hang"
	case blackhole:
		return "blackhole"
	case delay:
		return fmt.Sprintf("delay %s", f.d)
	case truncate:
		return fmt.Sprintf("truncate after %d bytes", f.n)
	case slowDrip:
		return fmt.Sprintf("slow drip, a byte every %s", f.d)
	case divert:
		return "divert to " + f.addr
	}
	return "pass"
}

// ConnRecord is one connection a FaultProxy accepted: the fault it got, when
// it was accepted and when it ended (zero while it is open). A connection
// ends when the client closes it (seen by every fault but Hang), when the
// answer is complete or cut, or when the proxy closes it.
type ConnRecord struct {
	Fault          string
	Opened, Closed time.Time
}

// FaultProxy is an in-process TCP proxy on 127.0.0.1 in front of one
// address, whose fault can be switched while it runs. Its methods are safe
// for concurrent use.
type FaultProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	fault  Fault
	open   map[*faultConn]bool
	conns  []*ConnRecord
	closed bool
}

// NewFaultProxy listens on a free port of 127.0.0.1 and forwards each
// connection to target, as the current fault (Pass at first) says.
func NewFaultProxy(target string) (*FaultProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &FaultProxy{ln: ln, target: target, open: map[*faultConn]bool{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *FaultProxy) Addr() string { return p.ln.Addr().String() }

// Set makes f the fault of the connections accepted from now on, and resets
// every open connection, as a change in the network would: a client's
// kept-alive connection does not outlive the switch.
func (p *FaultProxy) Set(f Fault) {
	p.mu.Lock()
	p.fault = f
	open := make([]*faultConn, 0, len(p.open))
	for c := range p.open {
		open = append(open, c)
	}
	p.mu.Unlock()
	for _, c := range open {
		c.kill()
	}
}

// Conns returns a record of every connection accepted so far, oldest first.
func (p *FaultProxy) Conns() []ConnRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ConnRecord, len(p.conns))
	for i, r := range p.conns {
		out[i] = *r
	}
	return out
}

// Close stops listening, resets every open connection and waits until they
// are gone.
func (p *FaultProxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.Set(Pass)
	p.wg.Wait()
	return err
}

func (p *FaultProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		c := &faultConn{client: client.(*net.TCPConn), done: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			client.Close()
			return
		}
		f := p.fault
		c.rec = &ConnRecord{Fault: f.String(), Opened: time.Now()}
		p.conns = append(p.conns, c.rec)
		p.open[c] = true
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(c, f)
	}
}

// serve applies f to one connection until it ends.
func (p *FaultProxy) serve(c *faultConn, f Fault) {
	defer p.wg.Done()
	defer func() {
		c.end(false)
		p.mu.Lock()
		c.rec.Closed = time.Now()
		delete(p.open, c)
		p.mu.Unlock()
	}()
	switch f.kind {
	case reset:
		c.end(true)
		return
	case hang:
		<-c.done
		return
	case blackhole:
		io.Copy(io.Discard, c.client)
		return
	case delay:
		select {
		case <-time.After(f.d):
		case <-c.done:
			return
		}
	}
	target := p.target
	if f.kind == divert {
		target = f.addr
	}
	up, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		c.end(true)
		return
	}
	if !c.setUpstream(up) {
		return
	}
	// The request goes through as it comes; the answer as the fault says.
	requestDone := make(chan struct{})
	go func() {
		defer close(requestDone)
		io.Copy(up, c.client)
		up.(*net.TCPConn).CloseWrite()
	}()
	switch f.kind {
	case truncate:
		io.CopyN(c.client, up, f.n)
	case slowDrip:
		c.drip(up, f.d)
	default:
		io.Copy(c.client, up)
		// The upstream is done: so is the client, once it has read the rest.
		c.client.CloseWrite()
		select {
		case <-requestDone:
		case <-c.done:
		}
	}
	c.end(false)
	<-requestDone
}

// faultConn is one accepted connection and, once dialled, its upstream.
type faultConn struct {
	client *net.TCPConn
	rec    *ConnRecord // guarded by the proxy's mu
	done   chan struct{}
	once   sync.Once

	mu   sync.Mutex
	up   net.Conn
	dead bool
}

// setUpstream records up, or closes it and returns false if the connection
// has ended meanwhile.
func (c *faultConn) setUpstream(up net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		up.Close()
		return false
	}
	c.up = up
	return true
}

// kill resets the connection: the client reads ECONNRESET.
func (c *faultConn) kill() { c.end(true) }

// end closes the client's connection, reset if abrupt, and the upstream
// one; only its first call counts.
func (c *faultConn) end(abrupt bool) {
	c.once.Do(func() {
		close(c.done)
		if abrupt {
			c.client.SetLinger(0)
		}
		c.client.Close()
		c.mu.Lock()
		c.dead = true
		if c.up != nil {
			c.up.Close()
		}
		c.mu.Unlock()
	})
}

// drip copies up to the client one byte every d.
func (c *faultConn) drip(up net.Conn, d time.Duration) {
	buf := make([]byte, 4096)
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		n, err := up.Read(buf)
		for i := range n {
			select {
			case <-t.C:
				t.Reset(d)
			case <-c.done:
				return
			}
			if _, err := c.client.Write(buf[i : i+1]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
