// Labels in French (default) and English. Keys are used by data-i18n
// (text), data-i18n-placeholder and data-i18n-label (aria-label) in the
// page, and by t() in the script.
const labels = {
  fr: {
    skip: 'Aller au message',
    loginIntro: 'Coordination des soins — messagerie sécurisée de santé',
    address: 'Adresse MSSanté',
    password: 'Mot de passe',
    login: 'Se connecter',
    logout: 'Se déconnecter',
    otherLang: 'English',
    notifications: 'Notifications',
    enableNotifications: 'Activer les alertes',
    noNotifications: 'Aucune notification.',
    rooms: 'Salons',
    newRoom: 'Nouveau salon',
    noRooms: "Aucun salon pour l'instant.",
    pickRoom: 'Choisissez un salon ou créez-en un.',
    members: 'Membres',
    messagesLabel: 'Messages du salon',
    message: 'Message',
    composerPlaceholder: 'Écrire un message…',
    send: 'Envoyer',
    addPerson: 'Ajouter une personne',
    searchPlaceholder: 'Nom ou adresse',
    add: 'Ajouter',
    roomKind: 'Type de salon',
    kindPatient: 'Cercle de soins (patient)',
    kindTeam: 'Équipe',
    kindDirect: 'Conversation',
    roomName: 'Nom du salon',
    patientName: 'Nom du patient',
    patientIns: 'INS du patient (matricule INS)',
    cancel: 'Annuler',
    create: 'Créer',
    unread: (n) => `${n} non lu${n > 1 ? 's' : ''}`,
    readBy: (names) => `Lu par ${names}`,
    typing: (name) => `${name} écrit…`,
    sending: 'Envoi…',
    failed: 'Échec, nouvel essai à la reconnexion',
    edited: 'modifié',
    deleted: 'Message supprimé',
    owner: 'propriétaire',
    you: 'vous',
    patient: (name, ins) => `Patient : ${name || '—'}${ins ? ' · INS ' + ins : ''}`,
    team: 'Salon d’équipe',
    direct: 'Conversation directe',
    newDocument: 'Nouveau document',
    openDocument: 'Ouvrir le document',
    openRoom: 'Ouvrir le salon',
    loadingOlder: 'Chargement des messages plus anciens…',
    historyStart: 'Début de la conversation.',
    connecting: 'Connexion…',
    connected: '',
    offline: 'Hors ligne, reconnexion…',
    system: 'Relais',
    notLocal: 'hors établissement',
    noResults: 'Aucun résultat.',
    added: (name) => `${name} a été ajouté·e.`,
    errors: {
      bad_credentials: 'Adresse ou mot de passe incorrect.',
      throttled: 'Trop de tentatives. Réessayez dans quelques minutes.',
      bad_request: 'Requête invalide.',
      too_large: 'Message trop long (16 Kio au plus).',
      rate_limited: 'Trop de messages à la fois, patientez un instant.',
      not_found: 'Salon introuvable ou accès retiré.',
      forbidden: 'Action non autorisée.',
      internal: 'Erreur du serveur, réessayez.',
      network: 'Le serveur ne répond pas.',
      default: 'Une erreur est survenue.',
    },
  },
  en: {
    skip: 'Skip to message',
    loginIntro: 'Care coordination — secure health messaging',
    address: 'MSSanté address',
    password: 'Password',
    login: 'Log in',
    logout: 'Log out',
    otherLang: 'Français',
    notifications: 'Notifications',
    enableNotifications: 'Enable alerts',
    noNotifications: 'No notifications.',
    rooms: 'Rooms',
    newRoom: 'New room',
    noRooms: 'No rooms yet.',
    pickRoom: 'Pick a room or create one.',
    members: 'Members',
    messagesLabel: 'Room messages',
    message: 'Message',
    composerPlaceholder: 'Write a message…',
    send: 'Send',
    addPerson: 'Add someone',
    searchPlaceholder: 'Name or address',
    add: 'Add',
    roomKind: 'Kind of room',
    kindPatient: 'Care circle (patient)',
    kindTeam: 'Team',
    kindDirect: 'Conversation',
    roomName: 'Room name',
    patientName: 'Patient name',
    patientIns: 'Patient INS (INS number)',
    cancel: 'Cancel',
    create: 'Create',
    unread: (n) => `${n} unread`,
    readBy: (names) => `Read by ${names}`,
    typing: (name) => `${name} is typing…`,
    sending: 'Sending…',
    failed: 'Failed, will retry on reconnect',
    edited: 'edited',
    deleted: 'Message deleted',
    owner: 'owner',
    you: 'you',
    patient: (name, ins) => `Patient: ${name || '—'}${ins ? ' · INS ' + ins : ''}`,
    team: 'Team room',
    direct: 'Direct conversation',
    newDocument: 'New document',
    openDocument: 'Open the document',
    openRoom: 'Open the room',
    loadingOlder: 'Loading older messages…',
    historyStart: 'Start of the conversation.',
    connecting: 'Connecting…',
    connected: '',
    offline: 'Offline, reconnecting…',
    system: 'Relais',
    notLocal: 'outside this service',
    noResults: 'No results.',
    added: (name) => `${name} was added.`,
    errors: {
      bad_credentials: 'Wrong address or password.',
      throttled: 'Too many attempts. Try again in a few minutes.',
      bad_request: 'Invalid request.',
      too_large: 'Message too long (16 KiB at most).',
      rate_limited: 'Too many messages at once, wait a moment.',
      not_found: 'Room not found or access removed.',
      forbidden: 'Not allowed.',
      internal: 'Server error, try again.',
      network: 'The server does not answer.',
      default: 'Something went wrong.',
    },
  },
};

let lang = (localStorage.getItem('relais.lang') ||
  ((navigator.language || 'fr').toLowerCase().startsWith('en') ? 'en' : 'fr'));

export function currentLang() { return lang; }

export function setLang(l) {
  lang = labels[l] ? l : 'fr';
  localStorage.setItem('relais.lang', lang);
  apply(document);
}

// t returns a label; function labels take args.
export function t(key, ...args) {
  const v = labels[lang][key] ?? labels.fr[key] ?? key;
  return typeof v === 'function' ? v(...args) : v;
}

export function errorText(code) {
  const e = labels[lang].errors;
  return e[code] || e.default;
}

// apply fills the data-i18n attributes under root.
export function apply(root) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll('[data-i18n-label]')) el.setAttribute('aria-label', t(el.dataset.i18nLabel));
}
