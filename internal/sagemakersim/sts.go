package sagemakersim

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// serveSTS answers the STS query protocol: a form-encoded POST with
// Action=GetCallerIdentity, answered in XML. It is what lets the worker turn
// `--role NAME` into a role ARN in the caller's account.
func (s *Server) serveSTS(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeQueryError(w, http.StatusBadRequest, "Sender", "MalformedInput", err.Error())
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		writeQueryError(w, http.StatusBadRequest, "Sender", "MalformedInput", err.Error())
		return
	}
	if form.Get("Action") == "GetRole" {
		s.serveGetRole(w, r, form)
		return
	}
	if code, msg, ok := checkAuth(r, "sts"); !ok {
		writeQueryError(w, http.StatusForbidden, "Sender", code, msg)
		return
	}
	if form.Get("Action") != "GetCallerIdentity" {
		writeQueryError(w, http.StatusBadRequest, "Sender", "InvalidAction",
			fmt.Sprintf("Could not find operation %s for version %s", form.Get("Action"), form.Get("Version")))
		return
	}
	// The access key id of the Credential scope names the caller.
	akid := "AKIDEXAMPLE"
	if _, after, ok := strings.Cut(r.Header.Get("Authorization"), "Credential="); ok {
		akid, _, _ = strings.Cut(after, "/")
	}
	type result struct {
		Arn     string `xml:"Arn"`
		UserID  string `xml:"UserId"`
		Account string `xml:"Account"`
	}
	type response struct {
		XMLName  xml.Name `xml:"GetCallerIdentityResponse"`
		XMLNS    string   `xml:"xmlns,attr"`
		Result   result   `xml:"GetCallerIdentityResult"`
		Metadata struct {
			RequestID string `xml:"RequestId"`
		} `xml:"ResponseMetadata"`
	}
	out := response{
		XMLNS: "https://sts.amazonaws.com/doc/2011-06-15/",
		Result: result{
			Arn:     fmt.Sprintf("arn:aws:iam::%s:user/rh-sim", s.opts.AccountID),
			UserID:  akid,
			Account: s.opts.AccountID,
		},
	}
	out.Metadata.RequestID = newRequestID()
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-RequestId", out.Metadata.RequestID)
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(out)
}

// writeQueryError writes an error in the query protocol's XML shape.
func writeQueryError(w http.ResponseWriter, status int, typ, code, msg string) {
	writeQueryErrorNS(w, "https://sts.amazonaws.com/doc/2011-06-15/", status, typ, code, msg)
}

func writeQueryErrorNS(w http.ResponseWriter, ns string, status int, typ, code, msg string) {
	type errBody struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	type response struct {
		XMLName   xml.Name `xml:"ErrorResponse"`
		XMLNS     string   `xml:"xmlns,attr"`
		Error     errBody  `xml:"Error"`
		RequestID string   `xml:"RequestId"`
	}
	out := response{
		XMLNS:     ns,
		Error:     errBody{Type: typ, Code: code, Message: msg},
		RequestID: newRequestID(),
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(out)
}
