// Package translate converts request, response, stream and error bodies
// between the OpenAI Chat Completions API and the Anthropic Messages API, so
// that a keygate user can call an Anthropic model with an OpenAI client and
// the other way round; and from the Messages API to Amazon Bedrock's
// Converse API and back (converse*.go, stream_converse.go), so either client
// reaches every model on Bedrock. What Converse maps and refuses is written
// at the top of converse.go; the rest of this comment is about OpenAI and
// Anthropic.
//
// # What is mapped
//
//   - System prompts: OpenAI "system" and "developer" messages become
//     Anthropic's top-level "system" (one text block each, hoisted to the top
//     in their order); Anthropic's "system" string or text blocks become
//     leading OpenAI "system" messages.
//   - Documents: OpenAI "file" parts with file_data (a data: URI or bare
//     base64) and a filename become Anthropic document blocks titled with
//     the file name: PDF as a base64 source, plain text, Markdown, HTML and
//     CSV as a plain text source, Word and Excel files as a base64 source
//     in their media type (which Bedrock's Converse reads and Anthropic
//     refuses). The media type is the data URI's, or the file name's
//     extension's; file_id (a file stored at OpenAI) is refused.
//   - Text content as a string or an array of parts, and images: OpenAI
//     "image_url" parts with an http(s) URL or a data: base64 URI and Anthropic
//     image blocks with a "url" or "base64" source. The OpenAI "detail" hint
//     has no counterpart and is dropped.
//   - Tools: function definitions, tool_choice ("auto", "none", "required",
//     a named function <-> auto, none, any, tool), parallel_tool_calls=false
//     <-> disable_parallel_tool_use, the "strict" flag, assistant tool calls
//     (a JSON string of arguments <-> an input object) and tool results
//     (role "tool" messages <-> user "tool_result" blocks; consecutive results
//     share one Anthropic user message).
//   - Sampling and limits: max_tokens / max_completion_tokens <-> max_tokens
//     (Anthropic requires it; the caller supplies a default), stop <->
//     stop_sequences, temperature, top_p, stream, and user <->
//     metadata.user_id.
//   - Responses, streams and errors: ids, the model name the client asked
//     for, text, tool calls, finish_reason <-> stop_reason, and token usage
//     (Anthropic cache reads and writes count as prompt tokens; cache reads
//     are reported as prompt_tokens_details.cached_tokens).
//
// # What is refused
//
// A request field that has no counterpart in the other API, or whose
// translation would silently change what the user asked for, fails with an
// *UnsupportedError naming the field and what to change: for example OpenAI
// n>1, logprobs, audio, response_format other than text, non-zero penalties,
// logit_bias, legacy functions, reasoning_effort, a temperature above 1
// (Anthropic's maximum), OpenAI file parts that are not documents; and
// Anthropic top_k, extended thinking, documents (to OpenAI), server tools
// and images inside tool results.
// Fields the translator does not know are refused too, so that a new API
// feature is never dropped without notice. A few hints that change no result
// are dropped on purpose: OpenAI seed, store=false, metadata,
// prompt_cache_key, service_tier "auto"/"default", and Anthropic
// cache_control, service_tier and the is_error flag of a tool result (whose
// text still reaches the model).
//
// # Streams
//
// The stream translators read the upstream server-sent events one event at a
// time and make each translated event readable as soon as it is complete;
// nothing is buffered beyond the current event. A stream that ends without
// its terminal event (message_stop or data: [DONE]) ends the same way in
// the other dialect, with no invented finish; an upstream error event
// becomes the other dialect's error event and ends the stream. Anthropic
// pings become SSE comments. An OpenAI stream reports input tokens only at
// its end, so the translated message_start counts 0 input tokens and the
// final message_delta carries the real counts.
package translate
