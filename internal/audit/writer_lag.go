package audit

// Lag reports how many recorded events no sink has stored yet: those still
// queued and those taken by a flush that has not landed anywhere.
func (w *Writer) Lag() int {
	w.mu.Lock()
	queued := len(w.queue)
	w.mu.Unlock()
	return queued + int(w.unsent.Load())
}
