package capolicy

// CodeLicenceMissing: the tenant lacks the licence a control needs, so no policy can meet it.
const CodeLicenceMissing = "LICENCE_MISSING"
