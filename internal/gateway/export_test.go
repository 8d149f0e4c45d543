package gateway

// StreamText joins the generated text of an answer, streamed or not, for
// the package's external tests.
var StreamText = chatText
