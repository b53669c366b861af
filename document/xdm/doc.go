package xdm

// Decisions, and where they come from.
//
//   - Layout (ITI TF-2b 3.32.4.1.2.2, ZIP over e-mail as MSSanté uses it,
//     attachment IHE_XDM.ZIP): README.TXT and INDEX.HTM at the root,
//     IHE_XDM/<subset>/METADATA.XML and the documents beside it. Build writes
//     SUBSET01 and 8.3 upper-case names (DOC0001.XML); Read accepts any subset
//     name (an official sample uses SS000001) and, if there are several, reads
//     the first in name order (MSSanté: one patient, one submission set per
//     message).
//   - Metadata (ITI TF-3 4.2.3, 4.2.5): ebRIM 3.0 lcm:SubmitObjectsRequest; the
//     mapping from the CDA header and which attributes are required follow the
//     CI-SIS ("Lien entre l'en-tête CDA et les métadonnées XDS", table of
//     XDS metadata of the volet Transmission de documents CDA): see
//     EntryFromCDA and Package.Validate. The patientId is the INS as a CX with
//     type NH; sourcePatientId the IPP (type PI), else the INS.
//   - formatCode comes from the document model's templateId
//     (ASS_A11-CorresModeleCDA-XdsFormatCode-CISIS) or, for an unstructured
//     body, from its media type (XDS-SD); see cda.Header.Format.
//   - classCode is derived from typeCode through ASS_X04-CorrespondanceType-
//     Classe (NOS). Relais does not ship that table yet: ClassCodes is empty
//     by default and Document.ClassCode sets it; Validate reports a missing
//     classCode.
//   - The PDF rendering of a CDA travels, per the MSSanté client rules, as a
//     separate attachment of the mail; Build can still pack one as a second
//     entry (formatCode urn:ihe:iti:xds-sd:pdf:2008) when asked.
//   - Safety: Read never touches the file system. It refuses the archive when
//     any entry (needed or not) has an absolute path, a drive letter, a
//     backslash or "..", is a symbolic link or another non-regular file,
//     declares more than Limits.MaxFile, makes the total exceed
//     Limits.MaxTotal, or (above 1 MiB) has a compression ratio over
//     Limits.MaxRatio; data is read through a limit so that a header lying
//     about its size cannot inflate beyond it. METADATA.XML is parsed with
//     cda.Walk (no DOCTYPE, bounded size, depth and tokens). Documents are
//     hashed (SHA-1, ITI TF-3 4.2.3.2.12) and sized against the metadata;
//     CDA documents are parsed only by Check/Headers.
//   - Entry.Size is -1 when METADATA.XML has no size slot.
