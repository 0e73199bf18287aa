package sagemakersim

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
)

const iamNS = "https://iam.amazonaws.com/doc/2010-05-08/"

// serveGetRole answers IAM's GetRole in the Query protocol (a form POST
// signed for service "iam", an XML answer): the role of the account when it
// exists, NoSuchEntity (404) when not, AccessDenied (403) when the
// simulator models credentials without iam:GetRole.
func (s *Server) serveGetRole(w http.ResponseWriter, r *http.Request, form url.Values) {
	if code, msg, ok := checkAuth(r, "iam"); !ok {
		writeQueryErrorNS(w, iamNS, http.StatusForbidden, "Sender", code, msg)
		return
	}
	if form.Get("Version") != "2010-05-08" {
		writeQueryErrorNS(w, iamNS, http.StatusBadRequest, "Sender", "InvalidAction",
			fmt.Sprintf("Could not find operation GetRole for version %s", form.Get("Version")))
		return
	}
	name := form.Get("RoleName")
	if name == "" || len(name) > 64 {
		writeQueryErrorNS(w, iamNS, http.StatusBadRequest, "Sender", "ValidationError",
			"1 validation error detected: Value at 'roleName' failed to satisfy constraint: Member must have length between 1 and 64")
		return
	}
	if s.opts.IAMDenied {
		writeQueryErrorNS(w, iamNS, http.StatusForbidden, "Sender", "AccessDenied",
			fmt.Sprintf("User: arn:aws:iam::%s:user/rh-sim is not authorized to perform: iam:GetRole on resource: role %s because no identity-based policy allows the iam:GetRole action", s.opts.AccountID, name))
		return
	}
	if s.opts.Roles != nil && !slices.Contains(s.opts.Roles, name) {
		writeQueryErrorNS(w, iamNS, http.StatusNotFound, "Sender", "NoSuchEntity",
			fmt.Sprintf("The role with name %s cannot be found.", name))
		return
	}
	type role struct {
		Path     string `xml:"Path"`
		RoleName string `xml:"RoleName"`
		RoleID   string `xml:"RoleId"`
		Arn      string `xml:"Arn"`
	}
	type response struct {
		XMLName  xml.Name `xml:"GetRoleResponse"`
		XMLNS    string   `xml:"xmlns,attr"`
		Role     role     `xml:"GetRoleResult>Role"`
		Metadata struct {
			RequestID string `xml:"RequestId"`
		} `xml:"ResponseMetadata"`
	}
	out := response{XMLNS: iamNS, Role: role{Path: "/", RoleName: name, RoleID: "AROASIMULATOR0" + fmt.Sprint(len(name)),
		Arn: fmt.Sprintf("arn:aws:iam::%s:role/%s", s.opts.AccountID, name)}}
	out.Metadata.RequestID = newRequestID()
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-RequestId", out.Metadata.RequestID)
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(out)
}
