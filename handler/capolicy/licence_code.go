package capolicy

// CodeLicenceMissing is the reason code of a control the tenant's licence cannot serve (risk
// conditions need Microsoft Entra ID P2, for example). Guarding writes nothing for such a control:
// no policy caguard could write would take effect.
const CodeLicenceMissing = "LICENCE_MISSING"
