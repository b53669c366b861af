// Package directory is the directory of health professionals and the
// MSSanté trust space: the importers of the national files, the canonical
// form of operators' distinguished names, and search.
//
// Importers (Import) stream the three national files and apply them to the
// store as differences, idempotently:
//   - PS_LibreAcces_Personne_activite, the RPPS/ADELI extraction of the
//     Annuaire Santé (professionals, their activities and the structures
//     where they work), pipe-separated with a trailing '|';
//   - Extraction_Correspondance_MSSante, the MSSanté mailboxes published in
//     the Annuaire Santé (types PER, ORG, APP, CAB of TRE_R256);
//   - listeblanchemssante.xml, the MSSanté trust list (domains of the trust
//     space and the DN of each operator's server certificate).
//
// Their formats are summarised in shared/samples/national-files.md;
// columns are matched by header name, tolerating the known variants. Every
// parser is bounded (line length, XML depth and token size) and rejects a
// bad row with its line number without stopping the import.
//
// Distinguished names follow RFC 4514 (string form) and RFC 5280 4.1.2.4
// (certificate names), compared with caseIgnoreMatch (RFC 4517 4.2.11,
// RFC 4518).
package directory
